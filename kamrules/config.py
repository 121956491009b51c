"""Settings from ``kamrules.toml`` and the environment, validated into frozen models."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kamrules.errors import InputError, Problem

CONFIG_NAME = "kamrules.toml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckSettings(_Model):
    fail_on: Literal["info", "warning", "critical", "never"] = "warning"
    min_severity: Literal["info", "warning", "critical"] = "info"
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


class EmailSettings(_Model):
    smtp_host: str = "localhost"
    smtp_port: int | None = None  # default by tls: 587 starttls, 465 ssl, 25 none
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None  # never printed or logged
    smtp_from: str = "kamrules@localhost"
    smtp_tls: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_timeout: float = 30.0
    default_to: str | None = None
    templates_dir: str | None = None


class Settings(_Model):
    db: str = "kamrules.db"
    rulesets: tuple[str, ...] = ()  # the user's own rule-set folders, override built-ins by name
    plugins_dirs: tuple[str, ...] = ()
    check: CheckSettings = Field(default_factory=CheckSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    source: str | None = None  # the config file these came from, if any


ENV_EMAIL = {
    "KAMRULES_SMTP_HOST": "smtp_host",
    "KAMRULES_SMTP_PORT": "smtp_port",
    "KAMRULES_SMTP_USER": "smtp_user",
    "KAMRULES_SMTP_PASSWORD": "smtp_password",
    "KAMRULES_SMTP_FROM": "smtp_from",
    "KAMRULES_SMTP_TLS": "smtp_tls",
    "KAMRULES_EMAIL_DEFAULT_TO": "default_to",
}


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=", re.M)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def load_settings(path: str | os.PathLike | None = None, environ: dict | None = None) -> Settings:
    """Read ``path`` (or ./kamrules.toml if it exists), then apply environment overrides.

    Raises :class:`InputError` naming the file, line and what was expected.
    """
    environ = os.environ if environ is None else environ
    data: dict = {}
    text = ""
    if path is None and environ.get("KAMRULES_CONFIG"):
        path = environ["KAMRULES_CONFIG"]
    if path is None and Path(CONFIG_NAME).is_file():
        path = CONFIG_NAME
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8-sig")
            data = tomllib.loads(text)
        except FileNotFoundError:
            raise InputError(f"{p}: config file not found")
        except UnicodeDecodeError as e:
            raise InputError(f"{p}: not UTF-8 text (byte {e.start})")
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"{p}: invalid TOML: {e}")
        data = dict(data)
        data["source"] = str(p)
    email = dict(data.get("email", {}))
    for var, key in ENV_EMAIL.items():
        if environ.get(var):
            email[key] = environ[var]
    if email:
        data["email"] = email
    if environ.get("KAMRULES_DB"):
        data["db"] = environ["KAMRULES_DB"]
    try:
        return Settings(**data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(x) for x in err["loc"])
            leaf = str(err["loc"][-1]) if err["loc"] else ""
            problems.append(Problem(str(path or "environment"), _line_of(text, leaf) if text else None, f"{key}: {err['msg']}"))
        raise InputError(f"{path or 'environment'}: invalid settings", problems)
