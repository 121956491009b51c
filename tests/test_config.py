"""Settings: kamrules.toml and environment overrides, validated strictly."""

import pytest

from kamrules.config import load_settings
from kamrules.contract import CORE_TABLES, load_order
from kamrules.errors import InputError


def test_defaults_without_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert s.db == "kamrules.db"
    assert s.check.fail_on == "warning"
    assert s.email.smtp_tls == "starttls"


def test_file_and_env_override(tmp_path):
    cfg = tmp_path / "kamrules.toml"
    cfg.write_text(
        'db = "book.db"\nrulesets = ["mine"]\n[check]\nfail_on = "critical"\n[email]\nsmtp_host = "mail.example"\n',
        encoding="utf-8",
    )
    s = load_settings(cfg, environ={"KAMRULES_SMTP_HOST": "127.0.0.1", "KAMRULES_SMTP_PASSWORD": "s3cret"})
    assert s.db == "book.db" and s.rulesets == ("mine",)
    assert s.check.fail_on == "critical"
    assert s.email.smtp_host == "127.0.0.1"
    assert "s3cret" not in repr(s) and s.email.smtp_password.get_secret_value() == "s3cret"


def test_unknown_key_is_located(tmp_path):
    cfg = tmp_path / "kamrules.toml"
    cfg.write_text('db = "x.db"\n\n[check]\nfail_onn = "critical"\n', encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_settings(cfg, environ={})
    text = e.value.render()
    assert (
        f"{cfg}:4: check.fail_onn: unknown setting (expected one of fail_on, min_severity, select, ignore, jobs, plugin_timeout, engine, stale_after_days)"
        in text
    )


def test_defaults_do_not_import_pydantic(tmp_path):
    # validation (pydantic) only runs on a settings file or environment overrides: 0.2 s of start-up
    import subprocess
    import sys

    code = (
        "import os, sys; from kamrules.config import load_settings; s = load_settings(environ={}); "
        "assert 'pydantic' not in sys.modules, 'pydantic imported'; print(s.check.jobs, s.email.port)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "587"]


def test_values_are_validated_and_converted(tmp_path):
    cfg = tmp_path / "kamrules.toml"
    cfg.write_text('[check]\njobs = 3\nselect = ["KAM1"]\n[email.renotify]\nwarning = "3d"\n', encoding="utf-8")
    s = load_settings(cfg, environ={"KAMRULES_SMTP_PORT": "2525"})
    assert s.check.jobs == 3 and s.check.select == ("KAM1",)
    assert s.email.renotify.warning == 3 * 86400.0 and s.email.port == 2525
    cfg.write_text("[check]\njobs = 99\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_settings(cfg, environ={})
    assert f"{cfg}:2: check.jobs: Input should be less than or equal to 64" in e.value.render()


def test_bad_toml_names_file(tmp_path):
    cfg = tmp_path / "kamrules.toml"
    cfg.write_text("db = \n", encoding="utf-8")
    with pytest.raises(InputError, match=r"kamrules.toml: invalid TOML: .*line 1"):
        load_settings(cfg, environ={})


def test_load_order_puts_referenced_tables_first():
    tables = {t.name: t for t in CORE_TABLES}
    order = load_order(tables)
    assert order[0] == "accounts"
    assert order.index("contacts") < order.index("activities")
    assert order.index("commitments") < order.index("concessions")
    assert sorted(order) == sorted(tables)
