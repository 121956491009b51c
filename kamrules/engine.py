"""The matcher behind one interface: durable_rules (the only module importing it) or Python.

:func:`compile_matcher` turns parsed rules (one ``(key, Rule, Variant)`` per tier and severity)
into a :class:`Matcher`; ``matcher.match(facts)`` gives, per fact, the keys of the rules it fired.
Two matchers, same semantics (tests/test_matcher.py compares them on random facts for every rule):
``durable`` (durable_rules, the default where it imports) and ``python`` (kamrules/pymatcher.py).
The choice: ``[check] engine = "auto" | "durable" | "python"`` in kamrules.toml, or KAMRULES_ENGINE
(see :func:`configure`); ``auto`` uses durable_rules if it imports, else Python, saying so once.

durable_rules traps handled here (see docs/architecture.md):

* facts, not events: every matching rule fires (``assert_facts``);
* every fact carries a unique ``id`` within a fresh state (``sid``) per batch, and
  the state is deleted afterwards: at most one live state, no 32-bit sid collisions,
  no facts accumulating in the engine;
* one process-wide host whose background dispatch threads never start; pending
  actions are drained explicitly, so results are complete when ``match`` returns;
* every rule also requires the marker field ``kam_`` so that the engine's own state
  document (updated after each action) never matches a rule;
* a catch-all rule matching only one sentinel fact added to each batch, so the
  batch's state always exists (deleting the state of a batch in which no fact matched
  anything crashed the engine: segmentation fault); the engine's "not handled" result
  for facts no rule matches is expected and ignored. (A catch-all on every fact cost
  one action round trip per fact.)
* actions are driven through the C API directly (start_action_for_state /
  complete_and_start_action): a fired rule costs one JSON parse, not durable's
  per-action state re-encoding (our actions never change the state);
* at most ``MAX_RULES`` rules per durable ruleset (the engine fails above ~64 rules
  per fact): bigger sets are split into several durable rulesets, each sent only the
  facts its rules read;
* facts are sent under short aliases (``f0``, ``f1``, ...; the conditions are rewritten
  to match): durable_rules parses every character of a batch, and the facts' names
  were most of them;
* an action exception, or one recorded in the state, raises :class:`EngineError`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from kamrules.conditions import AnyOf, Condition, _norm
from kamrules.errors import InputError

if TYPE_CHECKING:
    from kamrules.ruleset import Rule, Select, Variant

MAX_RULES = 50  # per durable ruleset, catch-all included
MAX_BATCH = 1000  # facts per assert; ids "0".."999" were checked collision-free
_MARK = "kam_"
_CATCH_ALL = "_kam_any"
_SENTINEL = "kam_sentinel"  # field only the sentinel fact of a batch carries


class EngineError(RuntimeError):
    """The rules engine failed (an action raised, or durable_rules rejected a ruleset or a fact)."""


# durable_rules, imported on first use (not at the import of this module: every command imports
# kamrules.engine's settings helpers, and the import costs 0.1 s); see import_error().
_de: Any = None
_dre: Any = None
_SyncHost: Any = None
_Ruleset: Any = None
_IMPORTED: list[str | None] = []  # [None] imported, [why not] failed; empty: not tried yet


def import_error() -> str | None:
    """None if durable_rules imports in this Python, else why not (tried once per process). On
    Python 3.13 durable-rules 2.0.28 built as it is fails: undefined symbol PyEval_CallObject."""
    global _de, _dre, _SyncHost, _Ruleset
    if _IMPORTED:
        return _IMPORTED[0]
    try:
        import durable.engine as de
        import durable_rules_engine as dre
    except Exception as e:  # ImportError, or any failure of its C extension: the Python matcher is used
        _IMPORTED.append(f"{type(e).__name__}: {e}")
        return _IMPORTED[0]

    class SyncHost(de.Host):  # type: ignore[misc]  # durable_rules has no types: de.Host is Any
        """A host whose background dispatch threads never start: actions run in the caller only."""

        def _run(self) -> None:  # noqa: D401 - replaces durable's timer threads
            self._d_timer = self._t_timer = None

    class Ruleset(de.Ruleset):  # type: ignore[misc]  # durable_rules has no types: de.Ruleset is Any
        """durable's Ruleset, created from our JSON (see :func:`_dumps`) with callables as actions."""

        def __init__(self, name: str, host: Any, definition: dict[str, Any]) -> None:
            self._actions: dict[str, Any] = {}
            self._name = name
            self._host = host
            for rule_name, rule in definition.items():
                self._actions[rule_name] = de.Promise(rule.pop("run"))
            self._handle = dre.create_ruleset(name, _dumps(definition))
            self._definition = definition

    _de, _dre, _SyncHost, _Ruleset = de, dre, SyncHost, Ruleset
    _IMPORTED.append(None)
    return None


_HOST: Any = None
_LOCK = threading.RLock()
_SIDS = itertools.count(1)
_COMPILED: dict[str, CompiledRules] = {}


def _host() -> Any:
    global _HOST
    if import_error() is not None:
        raise EngineError(f"durable_rules can't be imported ({import_error()})")
    if _HOST is None:
        _HOST = _SyncHost()
    return _HOST


def _noop(c: Any) -> None:
    """Actions are never called: results are read from the engine's action queue (see _run_actions)."""
    return None


def _clean(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (int, float, str)):
        return v
    return str(v)


def _plain_float(v: float) -> bool:
    """True if json writes ``v`` without an exponent (repr switches at 1e-4 and 1e16)."""
    return v == 0.0 or 1e-4 <= abs(v) < 1e16


def _dumps(obj: Any) -> str:
    """JSON for durable_rules' C parser, which crashes on exponents (1e-06, 1e+20): such floats
    are written as plain decimals. Non-finite floats must have been removed before."""
    floats: list[str] = []
    nonce = uuid.uuid4().hex

    def sub(x: Any) -> Any:
        if isinstance(x, float) and not _plain_float(x):
            floats.append(format(Decimal(repr(x)), "f"))
            return f"{nonce}{len(floats) - 1}"
        if isinstance(x, dict):
            return {k: sub(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [sub(v) for v in x]
        return x

    if isinstance(obj, list) and all(
        isinstance(m, dict) and all(not isinstance(v, float) or _plain_float(v) for v in m.values()) for m in obj
    ):
        return json.dumps(obj, ensure_ascii=False)
    text = json.dumps(sub(obj), ensure_ascii=False)
    if floats:
        text = re.sub(f'"{nonce}(\\d+)"', lambda m: floats[int(m.group(1))], text)
    return text


@dataclass(frozen=True)
class EngineRule:
    """One durable rule: ``key`` names it in results, ``condition`` is a durable_rules expression."""

    key: str
    condition: Mapping[str, Any]


def _fields(expr: Any, out: set[str]) -> None:
    if isinstance(expr, dict):
        for k, v in expr.items():
            if k == "$m" and isinstance(v, str):
                out.add(v)
            elif k.startswith("$"):
                _fields(v, out)
            else:
                out.add(k)
                _fields(v, out)
    elif isinstance(expr, list):
        for x in expr:
            _fields(x, out)


def _renamed(expr: Any, alias: Mapping[str, str]) -> Any:
    """``expr`` with each field name (as :func:`_fields` finds them) replaced by its alias."""
    if isinstance(expr, dict):
        out = {}
        for k, v in expr.items():
            if k == "$m" and isinstance(v, str):
                out[k] = alias.get(v, v)
            elif k.startswith("$"):
                out[k] = _renamed(v, alias)
            else:
                out[alias.get(k, k)] = _renamed(v, alias)
        return out
    if isinstance(expr, list):
        return [_renamed(x, alias) for x in expr]
    return expr


class CompiledRules:
    """A set of rules registered once in the process-wide host (one or more durable rulesets):
    the durable matcher."""

    name = "durable"

    def __init__(self, digest: str, rules: Sequence[EngineRule]):
        self.digest = digest
        self.keys = tuple(r.key for r in rules)
        fields: set[str] = set()
        for r in rules:
            _fields(dict(r.condition), fields)
        self.fields = frozenset(fields)
        # durable_rules reads facts by short aliases (f0, f1, ...): the fact names were most of the JSON text
        # it parses per batch (about 1,100 characters per account with 58 long names)
        alias = {f: f"f{i}" for i, f in enumerate(sorted(fields - {"id", "sid", _MARK}))}
        self.names: list[str] = []
        # durable ruleset -> (fact name, alias) of the facts its rules read
        self._chunk_fields: dict[str, tuple[tuple[str, str], ...]] = {}
        per = MAX_RULES - 1
        definitions = {}
        for i in range(0, max(len(rules), 1), per):
            name = f"kam_{digest}_{i // per}"
            mine: set[str] = set()
            for r in rules[i : i + per]:
                _fields(dict(r.condition), mine)
            self._chunk_fields[name] = tuple((f, alias[f]) for f in sorted(mine - {"id", "sid", _MARK}))
            chunk = {_CATCH_ALL: {"all": [{"m": {_SENTINEL: 1}}], "run": _noop}}
            for r in rules[i : i + per]:
                cond = {"$and": [{_MARK: 1}, _renamed(dict(r.condition), alias)]} if r.condition else {_MARK: 1}
                chunk[r.key] = {"all": [{"m": cond}], "run": _noop}
            definitions[name] = chunk
            self.names.append(name)
        h = _host()
        try:
            for name, definition in definitions.items():
                rs = _Ruleset(name, h, definition)
                h._ruleset_directory[name] = rs
                h._ruleset_list.append(rs)
        except BaseException as e:  # durable raises plain Exception with an error number
            raise EngineError(f"durable_rules rejected the rules: {e}") from e

    def match(self, facts: Sequence[Mapping[str, Any]]) -> list[set[str]]:
        """For each fact (dict of name -> value; None values are left out), the keys of the rules it fired."""
        fired: list[set[str]] = [set() for _ in facts]
        for start in range(0, len(facts), MAX_BATCH):
            chunk = facts[start : start + MAX_BATCH]
            if not chunk:
                continue
            with _LOCK:
                # each durable ruleset gets only the fields its rules read (the engine parses every field sent);
                # one sid serves them all (each ruleset keeps its own states)
                sid = f"b{next(_SIDS)}"
                texts: dict[tuple[tuple[str, str], ...], str | None] = {}
                for name in self.names:
                    fields = self._chunk_fields[name]
                    if fields not in texts:
                        texts[fields] = _encode(chunk, fields, sid)
                    text = texts[fields]
                    if text is None:
                        continue
                    for i, key in self._match_one(name, text, sid, len(chunk)):
                        fired[start + i].add(key)
        return fired

    def _match_one(self, name: str, text: str, sid: str, n: int) -> list[tuple[int, str]]:
        with _LOCK:
            h = _host()
            got: list[tuple[str, int, str]] = []
            created = False
            try:
                rs = h.get_ruleset(name)
                handle = rs._handle
                code, state = _dre.assert_facts(handle, text)
                if code not in (0, 1):  # 1: some fact matched no rule (expected); 2: already observed; 3: queued
                    raise EngineError(f"durable_rules returned {code} for a batch")
                created = True  # the sentinel matched the catch-all: the state exists
                _run_actions(handle, _dre.start_action_for_state(handle, state), state, got)
                _run_actions(handle, _dre.start_action(handle), None, got)
                st = rs.get_state(sid)
            except EngineError:
                raise
            except BaseException as e:
                raise EngineError(f"rules engine failed on a batch of {n} facts: {getattr(e, 'message', e)}") from e
            finally:
                if created:  # never delete a state that was not created (that crashes the engine)
                    try:
                        h.get_ruleset(name).delete_state(sid)
                    except BaseException:
                        pass
            if isinstance(st, dict) and st.get("exception"):
                raise EngineError(f"a rule action failed: {st['exception']}")
        return [(i, k) for s, i, k in got if s == sid]


def _suspect(text: str) -> bool:
    """True if JSON text may hold what durable_rules' parser must not see: a float with an exponent
    (json writes them as ``1e-05`` / ``1e+16``; they crash the parser), NaN/Infinity, or a boolean
    (sent as 0/1). Text inside strings can match too (an id like "A1e-5"): then the careful encoder
    runs, which is only slower. Plain substring searches: a regex over the text cost more."""
    if "NaN" in text or "Infinity" in text or "true" in text or "false" in text:
        return True
    for mark in ("e-", "e+"):
        i = text.find(mark, 1)
        while i != -1:
            if text[i - 1].isdigit():
                return True
            i = text.find(mark, i + 2)
    return False


# json.dumps(..., ensure_ascii=False), one encoder for every batch
_DUMPS = json.JSONEncoder(ensure_ascii=False).encode


def _encode(facts: Sequence[Mapping[str, Any]], fields: Sequence[tuple[str, str]], sid: str) -> str | None:
    """The batch as durable_rules JSON: each fact's ``fields`` (name, alias) that are not None, under their
    aliases, plus ``id`` (its index), ``sid`` and the marker, then the sentinel fact. None for an empty batch."""
    if not facts:
        return None
    msgs = []
    for i, f in enumerate(facts):
        get = f.get
        m = {a: v for k, a in fields if (v := get(k)) is not None}
        m["id"], m["sid"], m[_MARK] = str(i), sid, 1
        msgs.append(m)
    msgs.append({"id": "sentinel", "sid": sid, _SENTINEL: 1})
    try:
        text = _DUMPS(msgs)  # usually all text, int and plain floats
    except (TypeError, ValueError):
        text = None
    if text is not None and not _suspect(text):
        return text
    return _encode_careful(msgs)


def _encode_careful(msgs: list[dict[str, Any]]) -> str:
    """Like json.dumps, with values made safe for durable_rules: booleans as 0/1, other types as
    text, non-finite floats left out, exponent floats written as plain decimals."""
    odd: list[str] = []
    nonce = uuid.uuid4().hex
    out = []
    for m in msgs:
        clean = {}
        for k, v in m.items():
            t = type(v)
            if not (t is str or t is int or (t is float and _plain_float(v))):
                v = _clean(v)
                if type(v) is float and not _plain_float(v):
                    odd.append(format(Decimal(repr(v)), "f"))
                    v = f"{nonce}{len(odd) - 1}"
            if v is not None:
                clean[k] = v
        out.append(clean)
    text = json.dumps(out, ensure_ascii=False)
    if odd:
        text = re.sub(f'"{nonce}(\\d+)"', lambda g: odd[int(g.group(1))], text)
    return text


# An action message: {"<rule key>": {"m": {<fact>}}}, the fact ending as _encode ends every fact. Inside
# JSON strings every quote is escaped, so these cannot match text within a value.
_ACTION_HEAD = re.compile(r'\{"([^"\\]+)": ?\{"m": ?\{')
_ACTION_TAIL = re.compile(r'.*[{,] ?"id": "(\d+)", "sid": "([^"\\]*)", "' + _MARK + r'": 1\}\}\}\Z', re.S)


def _run_actions(handle: Any, result: Any, state_handle: Any, got: list[tuple[str, int, str]]) -> None:
    """Drain the actions the engine has queued, recording ``(fact index, rule key)`` per fired rule.

    ``result`` is what start_action(_for_state) returned: ``(state json, message json[, state handle])``
    or nothing. Each message is ``{rule key: {"m": fact}}``; completing an action starts the next one.
    """
    loads = json.loads
    head, tail = _ACTION_HEAD.match, _ACTION_TAIL.match
    while result:
        sh = state_handle if state_handle is not None else result[2]
        message = result[1]
        while message:
            # The engine hands back the fact's text as _encode wrote it: read the rule key, the fact's
            # index and sid off its two ends (json.loads of the whole fact cost ~3% of a check)
            h = head(message)
            t = tail(message, len(message) - 160) if h else None
            if h is not None and t is not None:
                if h.group(1) != _CATCH_ALL:
                    got.append((t.group(2), int(t.group(1)), h.group(1)))
            else:
                for key, content in loads(message).items():
                    if key != _CATCH_ALL:
                        m = content.get("m", content) if isinstance(content, dict) else content
                        if not isinstance(m, dict) or _MARK not in m:
                            raise EngineError(f"rules engine returned an unexpected match for {key}: {str(m)[:200]}")
                        got.append((m["sid"], int(m["id"]), key))
            message = _dre.complete_and_start_action(handle, sh)
        result = _dre.start_action(handle) if state_handle is None else None


def compile_rules(rules: Sequence[EngineRule]) -> CompiledRules:
    """Register ``rules`` once per process (keyed by a hash of their content) and return the handle."""
    raw = json.dumps([[r.key, r.condition] for r in rules], sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:20]
    with _LOCK:
        if digest not in _COMPILED:
            keys = [r.key for r in rules]
            if len(set(keys)) != len(keys) or _CATCH_ALL in keys:
                raise EngineError("rule keys must be unique")
            _COMPILED[digest] = CompiledRules(digest, rules)
        return _COMPILED[digest]


# -- parsed rules in durable_rules' dialect ----------------------------------------------------------

_DURABLE_OPS = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "!=": "$neq"}


def condition_to_durable(c: Condition | AnyOf, thresholds: Mapping[str, Any]) -> dict[str, Any]:
    """The durable_rules expression for condition ``c`` with ``thresholds`` in force."""
    if isinstance(c, AnyOf):
        return {"$or": [condition_to_durable(x, thresholds) for x in c.conditions]}
    f = c.fact
    if c.op == "is missing":
        return {"$nex": {f: 1}}
    if c.op == "is present":
        return {"$ex": {f: 1}}
    guards: list[dict[str, Any]] = [{"$ex": {f: 1}}]
    other: Any
    if c.ref_kind == "fact":
        guards.append({"$ex": {c.ref: 1}})
        other = {"$m": c.ref}
    elif c.ref_kind == "threshold" and c.ref is not None:
        other = _norm(thresholds[c.ref])
    else:
        other = c.value
    if c.op == "==":
        core: dict[str, Any] = {f: other}
    elif c.op in _DURABLE_OPS:
        core = {_DURABLE_OPS[c.op]: {f: other}}
    elif c.op == "in":
        core = {"$or": [{f: v} for v in other]} if other else {"$nex": {f: 1}}
    else:  # not in
        core = {"$and": [{"$neq": {f: v}} for v in other]} if other else {"$ex": {f: 1}}
    return {"$and": guards + [core]}


def _selected(select: Select) -> dict[str, Any]:
    parts = [{f: values[0]} if len(values) == 1 else {"$or": [{f: v} for v in values]} for f, values in select]
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _not_selected(select: Select, present: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Not (every fact of ``select`` has one of its values): some fact is missing or has none of them.
    ``present``: facts the rule's own conditions require (no "missing" branch: durable_rules allows about
    30 terms in one rule's expression)."""
    parts: list[dict[str, Any]] = []
    for f, values in select:
        none = [{"$neq": {f: v}} for v in values]
        none_of = none[0] if len(none) == 1 else {"$and": none}
        parts += [none_of] if f in present else [{"$nex": {f: 1}}, none_of]
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _required(rule: Rule) -> frozenset[str]:
    """Facts a rule's top-level conditions (not `is missing`, not in `any:`) require to be present."""
    return frozenset(f for c in rule.when if c.op not in ("is missing", "any") for f in c.facts)


def tier_guard(variant: Variant, present: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """durable_rules expression selecting the accounts of ``variant`` (its `limits:` row or tier, minus
    those of rows taking precedence; None: every account)."""
    parts = ([_selected(variant.select)] if variant.select else []) + [
        _not_selected(x, present) for x in variant.exclude
    ]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def rule_to_durable(rule: Rule, variant: Variant) -> dict[str, Any]:
    """The durable_rules expression of one (tier, severity) form of ``rule``."""
    parts = [condition_to_durable(c, variant.thresholds) for c in rule.when]
    guard = tier_guard(variant, _required(rule)) if rule.scope == "account" else None
    if guard:
        parts.insert(0, guard)
    return {"$and": parts} if parts else {}


# -- one interface, two matchers ----------------------------------------------------------------------


@dataclass(frozen=True)
class MatchRule:
    """One (tier, severity) form of a parsed rule, named ``key`` in match results."""

    key: str
    rule: Rule
    variant: Variant


class Matcher(Protocol):
    """Compiled rules: ``match(facts)`` gives, for each fact (name -> value; None, NaN and
    infinities count as missing), the set of keys of the rules it fired."""

    name: str  # "durable" or "python"
    keys: tuple[str, ...]

    def match(self, facts: Sequence[Mapping[str, Any]]) -> list[set[str]]: ...


ENGINES = ("auto", "durable", "python")
RECIPE = (
    "CPPFLAGS='-DPyEval_CallObject=PyObject_CallObject' pip install --no-cache-dir "
    "--no-binary durable-rules durable-rules==2.0.28"
)
_CHOICE: str | None = None  # set by configure(); None: KAMRULES_ENGINE, else "auto"
_WARNED = False


def configure(engine: str | None) -> None:
    """Choose the matcher for this process: "auto" (durable_rules if it imports, else Python),
    "durable" or "python"; None goes back to $KAMRULES_ENGINE (else "auto")."""
    global _CHOICE
    if engine is not None and engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r} (expected one of {', '.join(ENGINES)})")
    _CHOICE = engine


def choice() -> str:
    """The engine setting in force: configure()'d, else $KAMRULES_ENGINE, else "auto"."""
    if _CHOICE is not None:
        return _CHOICE
    env = os.environ.get("KAMRULES_ENGINE", "").strip()
    if env and env not in ENGINES:
        raise InputError(f"KAMRULES_ENGINE={env!r} (expected one of {', '.join(ENGINES)})")
    return env or "auto"


def resolve(engine: str | None = None) -> str:
    """The matcher ``engine`` (default: :func:`choice`) selects here: "durable" or "python".
    Raises :class:`InputError` if "durable" is asked for and durable_rules can't be imported."""
    engine = engine or choice()
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r} (expected one of {', '.join(ENGINES)})")
    if engine == "python":
        return "python"
    if import_error() is not None:
        if engine == "durable":
            raise InputError(
                f'engine = "durable" but durable_rules can\'t be imported ({import_error()}); '
                f'on Python 3.13+ build it with: {RECIPE} (or set engine = "python")'
            )
        return "python"
    return "durable"


def describe(engine: str | None = None) -> str:
    """One line for ``kamrules --version`` / ``kamrules plugins``: the matcher in use and why."""
    try:
        setting = engine or choice()
        used = resolve(setting)
    except InputError as e:
        return f"none ({e})"
    if used == "durable":
        return f'durable_rules {_durable_version()} (engine = "{setting}")'
    why = "" if setting == "python" else f"; durable_rules can't be imported: {import_error()}"
    return f'python (engine = "{setting}"{why})'


def _durable_version() -> str:
    try:
        from importlib.metadata import version

        return version("durable-rules")
    except Exception:
        return "(version unknown)"


def _warn_fallback() -> None:
    """Say once per process that durable_rules is missing and the Python matcher is used."""
    global _WARNED
    if _WARNED:
        return
    _WARNED = True
    print(
        f"kamrules: durable_rules can't be imported ({import_error()}); using the Python matcher (same alerts). "
        f'To use durable_rules on Python 3.13+: {RECIPE}; to silence this: engine = "python" under [check] '
        f"in kamrules.toml (or KAMRULES_ENGINE=python).",
        file=sys.stderr,
    )


def compile_matcher(rules: Sequence[MatchRule], engine: str | None = None) -> Matcher:
    """The rules compiled by the matcher ``engine`` selects (default: the process's setting)."""
    setting = engine or choice()
    used = resolve(setting)
    if used == "python":
        from kamrules.pymatcher import PythonMatcher

        if setting == "auto":
            _warn_fallback()
        return PythonMatcher(rules)
    keys = [r.key for r in rules]
    if len(set(keys)) != len(keys):
        raise EngineError("rule keys must be unique")
    return compile_rules([EngineRule(r.key, rule_to_durable(r.rule, r.variant)) for r in rules])
