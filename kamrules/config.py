"""Settings from ``kamrules.toml`` and the environment, validated into frozen dataclasses."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from kamrules.errors import InputError, Problem

if TYPE_CHECKING:
    from pydantic import AfterValidator, BeforeValidator, Field, SecretStr

CONFIG_NAME = "kamrules.toml"

# The settings are plain frozen dataclasses; their annotations carry pydantic's constraints and
# validators (as text, resolved when validating). Pydantic is imported only when there is something
# to validate: a settings file or an environment override. Without either, the defaults are built
# directly: importing pydantic and building its validators costs about 0.2 s, a tenth of a check
# of 10,000 accounts (and of every other command's start-up).
_STRICT = {"extra": "forbid"}  # pydantic's config for a stdlib dataclass: unknown keys are errors


def _no_newlines(v):
    if v is not None and ("\r" in v or "\n" in v):
        raise ValueError("must not contain a line break")
    return v


@dataclass(frozen=True)
class CheckSettings:
    __pydantic_config__ = _STRICT

    fail_on: Literal["info", "warning", "critical", "never"] = "warning"
    min_severity: Literal["info", "warning", "critical"] = "info"
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    jobs: Annotated[int, Field(ge=0, le=64)] = 0  # worker processes; 0: one per CPU (big books only)
    plugin_timeout: Annotated[float, Field(gt=0)] = 600.0  # seconds a provider's SQL or one derive call may run
    # the matcher: durable_rules where it imports ("auto"), or explicitly "durable" / "python" (also $KAMRULES_ENGINE)
    engine: Literal["auto", "durable", "python"] = "auto"
    # warn when a table's newest record is more than this many days before the as-of date; 0: never warn
    stale_after_days: Annotated[int, Field(ge=0, le=36500)] = 14


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value) -> float | None:
    """Seconds for '90s', '30m', '12h', '1d', '2w' (or a number of seconds); None for 'never'."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("never", "none", "")):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration (expected e.g. 12h, 1d, 7d or never)")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class RenotifySettings:
    """How long an unchanged, still-firing alert waits before it is sent again (seconds; None = never)."""

    __pydantic_config__ = _STRICT

    critical: Annotated[float | None, BeforeValidator(parse_duration)] = 86400.0
    warning: Annotated[float | None, BeforeValidator(parse_duration)] = 7 * 86400.0
    info: Annotated[float | None, BeforeValidator(parse_duration)] = None

    def interval(self, severity: str) -> float | None:
        return getattr(self, severity)


@dataclass(frozen=True)
class EmailSettings:
    """Notification settings: SMTP, routing, renotify intervals, templates, webhook."""

    __pydantic_config__ = _STRICT

    smtp_host: Annotated[str, AfterValidator(_no_newlines)] = "localhost"
    smtp_port: int | None = None  # default by tls: 587 starttls, 465 ssl, 25 none
    smtp_user: Annotated[str | None, AfterValidator(_no_newlines)] = None
    smtp_password: SecretStr | None = None  # never printed or logged
    smtp_from: Annotated[str, AfterValidator(_no_newlines)] = "kamrules@localhost"
    smtp_tls: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_timeout: float = 30.0
    smtp_ca_file: str | None = None  # trust this CA bundle (e.g. a company CA) instead of the system's
    default_to: Annotated[str | None, AfterValidator(_no_newlines)] = None
    templates_dir: str | None = None  # overrides kamrules/templates/email/* by file name
    renotify: RenotifySettings = field(default_factory=RenotifySettings)
    resolved_notices: bool = False  # also tell owners when a notified alert resolves
    backoff_seconds: float = 60.0  # first retry delay; doubles per attempt
    backoff_max_seconds: float = 6 * 3600.0
    webhook_url: Annotated[str | None, AfterValidator(_no_newlines)] = None  # the webhook notifier POSTs JSON here
    webhook_timeout: float = 15.0
    # a whole notify run (a check's sends, `kamrules notify`) stops sending after this many
    # seconds; what is left stays queued (exit 4). Bounds a slow or hanging server or plugin.
    notify_deadline: Annotated[float, Field(gt=0)] = 300.0
    # manager roll-ups: a manager's address -> the owners they lead; each gets one digest of the team's book
    managers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the mails' language (else the run's: --lang > $KAMRULES_LANG > lang); per recipient address above that
    lang: Literal["en", "zh"] | None = None
    lang_by_recipient: dict[str, Literal["en", "zh"]] = field(default_factory=dict)

    @property
    def port(self) -> int:
        if self.smtp_port:
            return self.smtp_port
        return {"starttls": 587, "ssl": 465, "none": 25}[self.smtp_tls]


@dataclass(frozen=True)
class Settings:
    __pydantic_config__ = _STRICT

    db: str = "kamrules.db"
    rulesets: tuple[str, ...] = ()  # the user's own rule-set folders, override built-ins by name
    plugins_dirs: tuple[str, ...] = ()
    lang: Literal["en", "zh"] = "en"  # the output language (kamrules.i18n); --lang and $KAMRULES_LANG go first
    check: CheckSettings = field(default_factory=CheckSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    source: str | None = None  # the config file these came from, if any


_ADAPTER = None


def _validate(data: dict) -> Settings:
    """``data`` validated into :class:`Settings` by pydantic (imported here, on first use)."""
    global _ADAPTER
    if _ADAPTER is None:
        import pydantic

        # the names the annotations use, for pydantic to resolve them in this module
        globals().update(
            AfterValidator=pydantic.AfterValidator,
            BeforeValidator=pydantic.BeforeValidator,
            Field=pydantic.Field,
            SecretStr=pydantic.SecretStr,
        )
        _ADAPTER = pydantic.TypeAdapter(Settings)
    return _ADAPTER.validate_python(data)


ENV_EMAIL = {
    "KAMRULES_SMTP_HOST": "smtp_host",
    "KAMRULES_SMTP_PORT": "smtp_port",
    "KAMRULES_SMTP_USER": "smtp_user",
    "KAMRULES_SMTP_PASSWORD": "smtp_password",
    "KAMRULES_SMTP_FROM": "smtp_from",
    "KAMRULES_SMTP_TLS": "smtp_tls",
    "KAMRULES_EMAIL_DEFAULT_TO": "default_to",
    "KAMRULES_SMTP_CA_FILE": "smtp_ca_file",
    "KAMRULES_EMAIL_TEMPLATES": "templates_dir",
    "KAMRULES_EMAIL_RESOLVED_NOTICES": "resolved_notices",
    "KAMRULES_WEBHOOK_URL": "webhook_url",
    "KAMRULES_NOTIFY_DEADLINE": "notify_deadline",
}


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=", re.M)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _names_at(loc: tuple) -> list[str]:
    """The setting names of the table at ``loc`` (() for the top level, ("email", "renotify"), ...)."""
    import dataclasses

    cls = {
        (): Settings,
        ("check",): CheckSettings,
        ("email",): EmailSettings,
        ("email", "renotify"): RenotifySettings,
    }.get(tuple(loc))
    return [f.name for f in dataclasses.fields(cls) if f.name != "source"] if cls else []


def load_settings(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (or ./kamrules.toml if it exists), then apply environment overrides.

    Raises :class:`InputError` naming the file, line and what was expected.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    data: dict = {}
    text = ""
    if path is None and env.get("KAMRULES_CONFIG"):
        path = env["KAMRULES_CONFIG"]
    if path is None and Path(CONFIG_NAME).is_file():
        path = CONFIG_NAME
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8-sig")
            data = tomllib.loads(text)
        except FileNotFoundError:
            from kamrules.i18n import _

            raise InputError(_("{path}: config file not found").format(path=p)) from None
        except UnicodeDecodeError as e:
            raise InputError(f"{p}: not UTF-8 text (byte {e.start})") from e
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"{p}: invalid TOML: {e}") from e
        data = dict(data)
        data["source"] = str(p)
    email = dict(data.get("email", {}))
    for var, key in ENV_EMAIL.items():
        if env.get(var):
            email[key] = env[var]
    if email:
        data["email"] = email
    if env.get("KAMRULES_DB"):
        data["db"] = env["KAMRULES_DB"]
    if env.get("KAMRULES_ENGINE") and isinstance(data.get("check", {}), dict):
        data["check"] = dict(data.get("check", {}), engine=env["KAMRULES_ENGINE"].strip())
    if not data:
        return Settings()
    from pydantic import ValidationError

    try:
        return _validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(x) for x in err["loc"])
            leaf = str(err["loc"][-1]) if err["loc"] else ""
            msg = err["msg"]
            if err["type"] == "unexpected_keyword_argument":  # a key no dataclass of the settings has
                msg = f"unknown setting (expected one of {', '.join(_names_at(err['loc'][:-1]))})"
            problems.append(
                Problem(str(path or "environment"), _line_of(text, leaf) if text else None, f"{key}: {msg}")
            )
        raise InputError(f"{path or 'environment'}: invalid settings", problems) from e
