"""The output language: gettext catalogues (kamrules/locale), enumeration labels, amounts, percentages, dates."""

from __future__ import annotations

import contextlib
import datetime as dt
import gettext as _gettext
import os
import re
from pathlib import Path

LANGS = ("en", "zh")  # en: the source strings, today's formats; zh: kamrules/locale/zh/LC_MESSAGES/kamrules.mo
DEFAULT = "en"
DOMAIN = "kamrules"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
ENV_VAR = "KAMRULES_LANG"
_BABEL_LOCALE = {"zh": "zh_CN"}  # CLDR locale for numbers and dates

_lang = DEFAULT
_cache: dict[str, _gettext.NullTranslations] = {}


def translations(lang: str) -> _gettext.NullTranslations:
    """The catalogue of ``lang`` (a NullTranslations for en: every string is its own msgid)."""
    t = _cache.get(lang)
    if t is None:
        t = (
            _gettext.NullTranslations()
            if lang == DEFAULT
            else _gettext.translation(DOMAIN, LOCALE_DIR, [lang], fallback=True)
        )
        _cache[lang] = t
    return t


def check_lang(value: str, where: str = "--lang") -> str:
    """``value`` as a language code, or an InputError naming ``where`` and the choices."""
    v = str(value).strip().lower().replace("_", "-")
    v = {"zh-cn": "zh", "zh-hans": "zh", "cn": "zh", "en-us": "en", "en-gb": "en"}.get(v, v)
    if v not in LANGS:
        from kamrules.errors import InputError

        raise InputError(f"{where}: {value!r} is not a language (expected one of: {', '.join(LANGS)})")
    return v


def set_lang(lang: str | None) -> str:
    """Make ``lang`` the language of everything written for people from now on; returns it."""
    global _lang
    _lang = check_lang(lang) if lang else DEFAULT
    return _lang


def get_lang() -> str:
    return _lang


@contextlib.contextmanager
def using(lang: str | None):
    """Within the block, write in ``lang`` (e.g. one email recipient's language); None keeps the current one."""
    global _lang
    before = _lang
    if lang:
        _lang = check_lang(lang)
    try:
        yield _lang
    finally:
        _lang = before


def resolve_lang(option: str | None = None, environ=None, settings=None) -> str:
    """The language by precedence: ``--lang`` > $KAMRULES_LANG > kamrules.toml ``lang`` > en."""
    if option:
        return check_lang(option, "--lang")
    environ = os.environ if environ is None else environ
    if environ.get(ENV_VAR):
        return check_lang(environ[ENV_VAR], ENV_VAR)
    return getattr(settings, "lang", None) or DEFAULT


def gettext(message: str) -> str:
    """``message`` in the current language (itself when it has no translation)."""
    return message if _lang == DEFAULT else translations(_lang).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    if _lang == DEFAULT:
        return singular if n == 1 else plural
    return translations(_lang).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Marks ``message`` for extraction without translating it (translated later with _())."""
    return message


def label(kind: str, value) -> str:
    """The label of an enumeration value (kamrules.vocab.LABELS): ``label("tier", "key")`` -> 大客户 in zh.

    English shows the value itself; an unknown kind or value is shown as it is."""
    if _lang == DEFAULT or value is None:
        return value
    from kamrules.vocab import LABELS

    entry = LABELS.get(kind, {}).get(value)
    return entry.get(_lang, value) if entry else value


_LOCALES: dict[str, object] = {}


def _locale():
    """The run language's babel Locale, parsed once (babel parses a locale name again on every call)."""
    loc = _LOCALES.get(_lang)
    if loc is None:
        from babel import Locale

        loc = _LOCALES[_lang] = Locale.parse(_BABEL_LOCALE.get(_lang, _lang))
    return loc


_LEAD_DIGITS = re.compile(r"\d+")


def amount(x) -> str:
    """An amount for people: en ``1,448,500`` (as today, whole units); zh in 万 / 亿 from CLDR's compact
    decimal formats: ``1,448.5万``, ``12.85亿`` (two decimals under 100 units, else one)."""
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)):
        return "n/a" if x is None else str(x)
    if _lang == DEFAULT:
        return f"{x:,.0f}"
    from babel.numbers import format_compact_decimal, format_decimal

    loc = _locale()
    ax = abs(x)
    if ax < 10_000:  # CLDR's compact form starts at 万
        return format_decimal(round(x, 2), locale=loc)
    unit = 100_000_000 if ax >= 99_995_000 else 10_000  # 9,999.5万 rounds to 1亿: CLDR picks 亿 itself
    text = format_compact_decimal(x, locale=loc, fraction_digits=2 if ax < 100 * unit else 1)
    # CLDR's compact patterns (0000万) have no grouping: group the whole part with the locale's own symbol
    return _LEAD_DIGITS.sub(lambda m: format_decimal(int(m.group()), locale=loc), text, count=1)


def percent(x, digits: int = 0) -> str:
    """A ratio as a percentage: 0.234 -> ``23%`` (``digits`` decimals), by CLDR's percent pattern."""
    if x is None:
        return "n/a"
    if _lang == DEFAULT:
        return f"{x:.{digits}%}"
    from babel.numbers import format_percent

    return format_percent(x, format="#,##0" + ("." + "0" * digits if digits else "") + "%", locale=_locale())


def date(d, long: bool = False) -> str:
    """A date: ISO ``2026-10-31`` in every language (sortable, one width in tables, what CRM exports and
    the issue's subject use); ``long=True`` gives CLDR's long form in zh (``2026年10月31日``)."""
    if d is None:
        return "n/a"
    text = d.isoformat() if isinstance(d, (dt.date, dt.datetime)) else str(d)
    if not long or _lang == DEFAULT:
        return text[:10] if isinstance(d, dt.datetime) else text
    from babel.dates import format_date

    try:
        day = d if isinstance(d, dt.date) else dt.date.fromisoformat(text[:10])
    except ValueError:
        return text
    return format_date(day, "long", locale=_locale())


def count(n: int, what: str) -> str:
    """``n`` alerts of a severity (or ``resolved``): en ``2 warning``, zh ``2条警告`` (the digest's counts)."""
    return gettext(_COUNTS[what]) % {"n": n} if what in _COUNTS else f"{n} {what}"


_COUNTS = {
    "critical": N_("%(n)d critical"),
    "warning": N_("%(n)d warning"),
    "info": N_("%(n)d info"),
    "resolved": N_("%(n)d resolved"),
}


# Why a rule was skipped, as kamrules.facts words it (in English: it is also stored in runs and JSON):
# for people, each known form in the current language; any other reason is shown as it is.
_REASONS = (
    (re.compile(r"no rows in table (\S+)"), N_("no rows in table {name}")),
    (re.compile(r"no table (\S+)"), N_("no table {name}")),
    (re.compile(r"no column (\S+)"), N_("no column {name}")),
    (
        re.compile(r"no values in column (\S+) \(NULL in every row\)"),
        N_("no values in column {name} (NULL in every row)"),
    ),
)


def reason_text(reason: str) -> str:
    """A skip reason from kamrules.facts (``no rows in table invoices``) in the current language."""
    if _lang == DEFAULT:
        return reason
    for pattern, msgid in _REASONS:
        m = pattern.fullmatch(reason)
        if m:
            return gettext(msgid).format(name=m.group(1))
    return reason
