"""The health scorecard: weights, penalties, grades and profiles, strictly validated from YAML."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kamrules.alerts import SEVERITIES
from kamrules.errors import InputError
from kamrules.ruleset import CODE_RE, NAME_RE, _Doc, _is_num, _type_name
from kamrules.vocab import TIERS

TOP_KEYS = (
    "scorecard",
    "description",
    "weights",
    "default_weight",
    "penalties",
    "extra_alerts",
    "rules",
    "grades",
    "profiles",
)
GRADE_KEYS = ("grade", "en", "zh", "min")
PROFILE_KEYS = ("profile", "match", "weights", "penalties", "extra_alerts", "rules")
MATCH_KEYS = ("tier", "segment")


@dataclass(frozen=True)
class Grade:
    grade: str  # e.g. at_risk
    en: str  # e.g. at risk
    zh: str  # e.g. 有风险
    min: float


@dataclass(frozen=True)
class Model:
    """The numbers that score one account: the base model or a profile merged over it."""

    name: str
    weights: Mapping[str, float]
    default_weight: float
    penalties: Mapping[str, float]
    extra_alerts: float
    rules: Mapping[str, float]

    def weight(self, ruleset: str) -> float:
        return float(self.weights.get(ruleset, self.default_weight))

    def factor(self, code: str) -> float:
        return float(self.rules.get(code, 1.0))


@dataclass(frozen=True)
class Profile:
    model: Model
    tiers: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()

    def matches(self, tier: Any, segment: Any) -> bool:
        return (not self.tiers or tier in self.tiers) and (not self.segments or segment in self.segments)


@dataclass(frozen=True)
class Scorecard:
    name: str
    base: Model
    grades: tuple[Grade, ...]  # highest min first
    profiles: tuple[Profile, ...] = ()
    path: str = ""
    description: str = ""
    digest: str = ""  # identifies the model: stored with each run's scores
    _raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def model_for(self, tier: Any = None, segment: Any = None) -> Model:
        for p in self.profiles:
            if p.matches(tier, segment):
                return p.model
        return self.base

    def grade_of(self, score: float) -> Grade:
        for g in self.grades:
            if score >= g.min:
                return g
        return self.grades[-1]

    def grade_names(self) -> tuple[str, ...]:
        return tuple(g.grade for g in self.grades)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._raw)


def default_path():
    return importlib.resources.files("kamrules") / "scorecard.yaml"


def load_scorecard(path: str | Path | None = None) -> Scorecard:
    """The scorecard at ``path``, or the built-in default; raises InputError (FILE:LINE:COL problems)."""
    if path is None:
        p = default_path()
        return parse_scorecard("kamrules/scorecard.yaml (built-in)", p.read_text(encoding="utf-8"))
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: scorecard file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder (expected a scorecard YAML file)") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from e
    return parse_scorecard(str(path), text)


def _number(doc: _Doc, path: tuple, v: Any, what: str, lo: float, hi: float, hi_open: bool = False) -> float | None:
    if not _is_num(v):
        doc.problem(path, f"{what}: {_type_name(v)} {v!r} is not a number (expected a number from {lo:g} to {hi:g})")
        return None
    if v < lo or v > hi or (hi_open and v >= hi):
        doc.problem(
            path,
            f"{what}: {v!r} is out of range (expected {lo:g} to {hi:g}{', not ' + format(hi, 'g') if hi_open else ''})",
        )
        return None
    return float(v)


def _keys(doc: _Doc, path: tuple, data: Any, allowed, what: str) -> bool:
    if not isinstance(data, dict):
        doc.problem(path, f"{what}: {_type_name(data)} (expected a mapping with {', '.join(allowed)})")
        return False
    for key in data:
        if key not in allowed:
            doc.problem(
                path + (key,), f"unknown key {key!r} in {what} (expected one of {', '.join(allowed)})", key=True
            )
    return True


def _mapping(
    doc: _Doc, path: tuple, raw: Any, what: str, key_re, key_hint: str, lo: float, hi: float
) -> dict[str, float]:
    if not isinstance(raw, dict):
        doc.problem(path, f"{what}: {_type_name(raw)} (expected a mapping of {key_hint} to numbers)")
        return {}
    out = {}
    for k, v in raw.items():
        if not key_re.match(k):
            doc.problem(path + (k,), f"{what}: {k!r} is not a {key_hint}", key=True)
            continue
        x = _number(doc, path + (k,), v, f"{what}.{k}", lo, hi)
        if x is not None:
            out[k] = x
    return out


def _penalties(doc: _Doc, path: tuple, raw: Any, extra: float | None) -> dict[str, float]:
    if not isinstance(raw, dict):
        doc.problem(path, f"penalties: {_type_name(raw)} (expected a mapping of info, warning, critical to numbers)")
        return {}
    out = {}
    for k, v in raw.items():
        if k not in SEVERITIES:
            doc.problem(path + (k,), f"unknown severity {k!r} (expected {', '.join(SEVERITIES)})", key=True)
            continue
        x = _number(doc, path + (k,), v, f"penalties.{k}", 0, 1)
        if x is not None:
            out[k] = x
    missing = [s for s in SEVERITIES if s not in raw]
    if missing:
        doc.problem(
            path,
            f"penalties: missing {', '.join(missing)} (expected a number for each of {', '.join(SEVERITIES)})",
            key=True,
        )
        return out
    if len(out) == len(SEVERITIES):
        if not out["info"] <= out["warning"] <= out["critical"]:
            doc.problem(
                path, "penalties must not decrease with severity (expected info <= warning <= critical)", key=True
            )
        elif extra is not None and out["critical"] > 0 and out["info"] / (1 - extra) >= out["critical"]:
            doc.problem(
                path,
                f"penalties.info {out['info']:g} with extra_alerts {extra:g} lets enough infos outweigh one "
                f"critical (expected info / (1 - extra_alerts) < critical)",
                key=True,
            )
    return out


def _match(doc: _Doc, path: tuple, raw: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not _keys(doc, path, raw, MATCH_KEYS, "match"):
        return (), ()
    if not raw:
        doc.problem(path, "match is empty (expected tier: and/or segment:)")
    out = []
    for key in MATCH_KEYS:
        v = raw.get(key, [])
        vals = [v] if isinstance(v, str) else v
        if not isinstance(vals, list) or not all(isinstance(x, str) for x in vals):
            doc.problem(path + (key,), f"match.{key}: {_type_name(v)} (expected text or a list of text)")
            vals = []
        if key == "tier":
            for i, t in enumerate(vals):
                if t not in TIERS:
                    doc.problem(
                        path + (key,) + ((i,) if isinstance(v, list) else ()),
                        f"unknown tier {t!r} (expected {', '.join(TIERS)})",
                    )
        out.append(tuple(vals))
    return out[0], out[1]


def _grades(doc: _Doc, raw: Any) -> list[Grade]:
    if not isinstance(raw, list) or not raw:
        doc.problem(("grades",), f"grades: {_type_name(raw)} (expected a list of grade:, en:, zh:, min:)")
        return []
    grades, seen = [], set()
    for i, g in enumerate(raw):
        p = ("grades", i)
        if not _keys(doc, p, g, GRADE_KEYS, "a grade"):
            continue
        vals = {}
        for key in ("grade", "en", "zh"):
            v = g.get(key)
            if not isinstance(v, str) or not v.strip():
                doc.problem(
                    p + ((key,) if key in g else ()),
                    f"{key}: {_type_name(v) if key in g else 'missing'} (expected non-empty text)",
                )
            vals[key] = v.strip() if isinstance(v, str) else ""
        if vals["grade"] and not NAME_RE.match(vals["grade"]):
            doc.problem(p + ("grade",), f"grade {vals['grade']!r} (expected lower_case_with_underscores)")
        if vals["grade"] in seen:
            doc.problem(p + ("grade",), f"duplicate grade {vals['grade']!r}")
        seen.add(vals["grade"])
        if "min" not in g:
            doc.problem(p, "missing key 'min' (expected the lowest score of this grade, 0 to 100)")
            continue
        lo = _number(doc, p + ("min",), g["min"], "min", 0, 100)
        if lo is not None:
            grades.append(Grade(vals["grade"], vals["en"], vals["zh"], lo))
    mins = [g.min for g in grades]
    if len(set(mins)) != len(mins):
        doc.problem(("grades",), "two grades have the same min (expected one band per min)", key=True)
    if grades and len(grades) == len(raw) and 0 not in mins:
        doc.problem(
            ("grades",),
            f"the grades do not cover 0 to 100: scores below {min(mins):g} have no grade (expected a grade with min: 0)",
            key=True,
        )
    return sorted(grades, key=lambda g: -g.min)


def _model(doc: _Doc, path: tuple, data: dict, base: Model | None, name: str) -> Model:
    extra = base.extra_alerts if base else None
    if "extra_alerts" in data:
        extra = _number(doc, path + ("extra_alerts",), data["extra_alerts"], "extra_alerts", 0, 1, hi_open=True)
    elif base is None:
        doc.problem(path, "missing key 'extra_alerts' (expected a number from 0 to 1, e.g. 0.5)")
    weights = dict(base.weights) if base else {}
    if "weights" in data:
        weights.update(
            _mapping(doc, path + ("weights",), data["weights"], "weights", NAME_RE, "rule-set name", 0, 1000)
        )
    elif base is None:
        doc.problem(path, "missing key 'weights' (expected a mapping of rule-set names to numbers)")
    default_weight = base.default_weight if base else 0.0
    if "default_weight" in data:
        default_weight = (
            _number(doc, path + ("default_weight",), data["default_weight"], "default_weight", 0, 1000) or 0.0
        )
    if "penalties" in data:
        penalties = _penalties(doc, path + ("penalties",), data["penalties"], extra)
    elif base is None:
        doc.problem(path, "missing key 'penalties' (expected info:, warning:, critical: numbers from 0 to 1)")
        penalties = {}
    else:
        penalties = dict(base.penalties)
        if "extra_alerts" in data and extra is not None:
            _penalties(doc, path + ("extra_alerts",), penalties, extra)
    rules = dict(base.rules) if base else {}
    if "rules" in data:
        rules.update(
            _mapping(doc, path + ("rules",), data["rules"], "rules", CODE_RE, "rule code (e.g. KAM301)", 0, 10)
        )
    return Model(name, weights, default_weight, penalties, extra if extra is not None else 0.5, rules)


def parse_scorecard(path: str, text: str) -> Scorecard:
    """Parse and validate a scorecard; every problem is reported at once as FILE:LINE:COL."""
    doc = _Doc(path, text)
    data = doc.data
    if not isinstance(data, dict):
        doc.problem(
            (), f"the file holds {_type_name(data)} (expected a mapping with scorecard:, weights:, penalties:, grades:)"
        )
        raise InputError(f"{path}: invalid scorecard", doc.problems)
    for key in data:
        if key not in TOP_KEYS:
            doc.problem((key,), f"unknown key {key!r} (expected one of {', '.join(TOP_KEYS)})", key=True)
    name = data.get("scorecard", "")
    if not isinstance(name, str) or not NAME_RE.match(name):
        doc.problem(
            ("scorecard",) if "scorecard" in data else (),
            f"scorecard: {name!r} (expected a lower_case_with_underscores name)",
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        doc.problem(("description",), f"description: {_type_name(description)} (expected text)")
        description = ""
    base = _model(doc, (), data, None, "base")
    grades = _grades(doc, data.get("grades"))
    profiles = []
    raw_profiles = data.get("profiles", [])
    if not isinstance(raw_profiles, list):
        doc.problem(("profiles",), f"profiles: {_type_name(raw_profiles)} (expected a list of profile:, match:, ...)")
        raw_profiles = []
    names = set()
    for i, p in enumerate(raw_profiles):
        path_ = ("profiles", i)
        if not _keys(doc, path_, p, PROFILE_KEYS, "a profile"):
            continue
        pname = p.get("profile")
        if not isinstance(pname, str) or not NAME_RE.match(pname):
            doc.problem(
                path_ + (("profile",) if "profile" in p else ()),
                f"profile: {pname!r} (expected a lower_case_with_underscores name)",
            )
            pname = f"profile_{i + 1}"
        if pname in names:
            doc.problem(path_ + ("profile",), f"duplicate profile {pname!r}")
        names.add(pname)
        if "match" not in p:
            doc.problem(path_, "missing key 'match' (expected e.g. match: {tier: [key]})")
            tiers, segments = (), ()
        else:
            tiers, segments = _match(doc, path_ + ("match",), p["match"])
        profiles.append(Profile(_model(doc, path_, p, base, pname), tiers, segments))
    if doc.problems:
        n = len(doc.problems)
        raise InputError(f"{path}: invalid scorecard ({n} problem{'s' if n > 1 else ''})", doc.problems)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:16]
    return Scorecard(name, base, tuple(grades), tuple(profiles), path, " ".join(description.split()), digest, data)
