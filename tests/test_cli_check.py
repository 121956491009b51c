"""`kamrules check / rules / explain / demo` through click's CliRunner on real SQLite stores."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_check import PLUGIN, RULES, make_plugin, make_store

from kamrules.cli import cli
from kamrules.plugins import make_plugin_manager

GOLDEN = Path(__file__).parent / "golden"
AS_OF = "2026-10-31"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("KAMRULES_CONFIG", "KAMRULES_DB", "KAMRULES_PLUGINS_DIR", "KAMRULES_LOAD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    plugins = make_plugin(tmp_path / "plugins")
    pm = make_plugin_manager(plugins_dirs=[plugins], load_entry_points=False)
    make_store(tmp_path / "book.db", pm).close()
    return tmp_path


def run(env, *args, plugins=None):
    base = ["--plugins-dir", str(plugins or env / "plugins")]
    cmd = list(args)
    if cmd and cmd[0] in ("check", "explain", "rules"):
        cmd[1:1] = ["--db", str(env / "book.db")]
    return CliRunner().invoke(cli, base + cmd, catch_exceptions=False)


def check(env, *args, **kw):
    return run(env, "check", "--as-of", AS_OF, "--ruleset", "examples", "--no-history", *args, **kw)


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("KAMRULES_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"differs from {path} (KAMRULES_UPDATE_GOLDEN=1 to refresh)"


def test_golden_table(env):
    r = check(env)
    assert r.exit_code == 1  # warnings at the default --fail-on warning
    golden("check_examples_table.txt", r.stdout)
    assert "4 accounts checked as of 2026-10-31: 5 alerts (1 critical, 2 warning, 2 info)" in r.stderr
    assert "skipped TST201: no rows in table complaints" in r.stderr


def test_golden_json(env):
    r = check(env, "--format", "json")
    data = json.loads(r.stdout)
    golden("check_examples.json", r.stdout)
    assert {
        "ruleset",
        "code",
        "rule",
        "account_id",
        "account_name",
        "owner",
        "owner_email",
        "severity",
        "message",
        "action",
        "evidence",
        "as_of",
        "fingerprint",
    } <= set(data[0])
    assert [d for d in data if d["account_id"] is None][0]["code"] == "TST301"


def test_table_fits_80_columns_and_aligns_chinese(env):
    from kamrules.termtable import width

    r = check(env)
    assert all(width(line) <= 80 for line in r.stdout.splitlines())
    assert "华东机电有限公司 (A1)" in r.stdout and "(no owner)" in r.stdout


def test_other_formats(env, tmp_path):
    jl = [json.loads(line) for line in check(env, "--format", "jsonl").stdout.splitlines()]
    assert len(jl) == 5
    rows = list(csv.DictReader(io.StringIO(check(env, "--format", "csv").stdout)))
    assert len(rows) == 5 and rows[0]["fingerprint"] and json.loads(rows[0]["evidence"])
    md = check(env, "--format", "markdown").stdout
    assert md.startswith("# kamrules check as of 2026-10-31") and "| account | severity | code |" in md
    out = tmp_path / "alerts.json"
    r = check(env, "--format", "json", "--output", str(out))
    assert r.stdout == "" and len(json.loads(out.read_text(encoding="utf-8"))) == 5


def format_plugin(tmp_path, name: str, render: str):
    """The examples plugin plus a plugin module adding the output format ``name`` (``render``: a lambda's source)."""
    extra = tmp_path / "more"
    make_plugin(extra)
    (extra / f"{name}_format.py").write_text(
        "from kamrules import hookimpl\nfrom kamrules.formats import OutputFormat\n"
        "@hookimpl\ndef register_output_formats():\n"
        f"    return [OutputFormat({name!r}, {render})]\n",
        encoding="utf-8",
    )
    return extra


def test_plugin_format(env, tmp_path):
    extra = format_plugin(tmp_path, "count", "lambda alerts, summary: f'{len(alerts)}\\n'")
    assert check(env, "--format", "count", plugins=extra).stdout == "5\n"


@pytest.mark.parametrize(
    "args, code",
    [
        ((), 1),
        (("--fail-on", "never"), 0),
        (("--fail-on", "critical"), 1),
        (("--fail-on", "critical", "--select", "TST101"), 0),
        (("--min-severity", "critical", "--fail-on", "info"), 1),
        (("--ignore", "TST"), 0),
        (("--format", "xml"), 2),
        (("--ruleset", "nope"), 2),
        (("--as-of", "31/10/2026"), 2),
    ],
)
def test_exit_codes(env, args, code):
    assert check(env, *args).exit_code == code


def test_select_and_ignore(env):
    data = json.loads(check(env, "--format", "json", "--select", "TST1", "--ignore", "TST102").stdout)
    assert {d["code"] for d in data} == {"TST101"}


def test_failing_plugin_exits_3_and_other_rules_fire(env, tmp_path):
    bad = tmp_path / "bad"
    make_plugin(
        bad, PLUGIN.replace('FROM orders "\n                "WHERE', 'FROM no_such_table "\n                "WHERE')
    )
    r = check(env, "--format", "json", plugins=bad)
    assert r.exit_code == 3
    assert "FAILED fact provider sales: OperationalError: no such table: no_such_table" in r.stderr
    assert {d["code"] for d in json.loads(r.stdout)} == {"TST102", "TST301"}


def test_raising_derive_exits_3(env, tmp_path):
    bad = tmp_path / "bad"
    make_plugin(bad, PLUGIN.replace('{"revenue_k": f["revenue"] / 1000}', '{"revenue_k": 1 / 0}'))
    r = check(env, plugins=bad)
    assert r.exit_code == 3 and "FAILED fact provider sales (derive): ZeroDivisionError" in r.stderr


def test_bad_rule_file_exits_2_with_position(env, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "examples.yaml").write_text(RULES.replace("severity: critical", "severity: severe"), encoding="utf-8")
    r = check(env, "--rulesets", str(mine))
    assert r.exit_code == 2
    assert f"{mine / 'examples.yaml'}:16:15: unknown severity 'severe' (expected info, warning, critical)" in r.stderr
    assert "Traceback" not in r.output


def test_missing_store_exits_2(env, tmp_path):
    r = CliRunner().invoke(cli, ["check", "--db", str(tmp_path / "none.db")])
    assert r.exit_code == 2 and "no store here" in r.stderr


def test_history_is_recorded_by_default(env):
    r = run(env, "check", "--as-of", AS_OF, "--ruleset", "examples", "--fail-on", "never")
    assert r.exit_code == 0, r.output


def test_rules_command(env):
    r = run(env, "rules", "--ruleset", "examples")
    assert r.exit_code == 0
    assert "TST101  big_revenue  [info/warning/critical]" in r.stdout
    assert (
        "limit: info 100, warning 1000, critical 10000  (tiers: key: info 1000, warning 10000, critical 100000)"
        in r.stdout
    )
    data = json.loads(run(env, "rules", "--format", "json").stdout)
    names = {s["ruleset"] for s in data}
    assert {"examples", "over_subsidising", "stalled_stages"} <= names


def test_explain(env):
    r = run(env, "explain", "A2", "--as-of", AS_OF, "--ruleset", "examples")
    assert r.exit_code == 0, r.output
    assert re.search(r"^  revenue +5,000$", r.stdout, re.M)  # rounded for people (issue 13)
    assert "TST101    FIRED  fired: warning (`revenue > 1000`: revenue = 5,000)" in r.stdout
    assert "TST102    -      not fired: `owner is missing` is false (owner = '王磊')" in r.stdout
    assert "TST201    skip   skipped: no rows in table complaints" in r.stdout
    assert "TST301    port   portfolio rule, on the book: fired: info" in r.stdout
    data = json.loads(run(env, "explain", "A3", "--as-of", AS_OF, "--format", "json", "--ruleset", "examples").stdout)
    verdicts = {v["code"]: v for v in data["rules"]}
    assert verdicts["TST101"]["severity"] == "info" and verdicts["TST102"]["status"] == "fired"
    assert data["facts"]["name"] == "北京小店"
    r = run(env, "explain", "NOPE", "--as-of", AS_OF)
    assert r.exit_code == 2 and "no account 'NOPE'" in r.stderr


def test_demo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["demo", "--accounts", "150", "--owners", "2"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "kamrules-demo.db").exists()
    assert "150 accounts checked as of 2026-10-31" in r.stderr
    assert "kamrules check --db kamrules-demo.db" in r.stdout
    again = CliRunner().invoke(cli, ["demo", "--accounts", "150", "--owners", "2"], catch_exceptions=False)
    assert again.exit_code == 0 and again.stdout == r.stdout  # replaces the old store; same seed, same book


def test_failing_format_plugin_exits_3(env, tmp_path):
    extra = format_plugin(tmp_path, "boom", "lambda alerts, summary: 1 / 0")
    r = check(env, "--format", "boom", plugins=extra)
    assert r.exit_code == 3 and "output format 'boom' failed: ZeroDivisionError" in r.stderr
    assert check(env, "--format", "json", plugins=extra).exit_code == 1  # other formats unaffected


def test_rulesets_from_config_relative_to_the_config_file(env, tmp_path):
    conf = tmp_path / "conf"
    (conf / "mine").mkdir(parents=True)
    (conf / "mine" / "examples.yaml").write_text(
        RULES.replace("name: no_owner", "name: no_owner\n    enabled: false"), encoding="utf-8"
    )
    (conf / "kamrules.toml").write_text('rulesets = ["mine"]\n', encoding="utf-8")
    r = run(
        env,
        "--config",
        str(conf / "kamrules.toml"),
        "--db",
        str(env / "book.db"),
        "check",
        "--as-of",
        AS_OF,
        "--ruleset",
        "examples",
        "--no-history",
        "--format",
        "json",
    )
    assert "TST102" not in {d["code"] for d in json.loads(r.stdout)}
    assert "(disabled)" in run(env, "--config", str(conf / "kamrules.toml"), "rules", "--ruleset", "examples").stdout
    assert r.exit_code == 1


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


def test_undelivered_notifications_exit_4_and_failures_take_precedence(env, tmp_path, monkeypatch):
    monkeypatch.setenv("KAMRULES_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("KAMRULES_SMTP_PORT", str(_closed_port()))
    monkeypatch.setenv("KAMRULES_SMTP_TLS", "none")
    r = run(env, "check", "--as-of", AS_OF, "--ruleset", "examples", "--notify", "email", "--format", "json")
    assert r.exit_code == 4, r.output
    assert "undelivered" in r.stderr
    bad = tmp_path / "bad"
    make_plugin(bad, PLUGIN.replace('{"revenue_k": f["revenue"] / 1000}', '{"revenue_k": 1 / 0}'))
    r = run(env, "check", "--as-of", "2026-10-30", "--ruleset", "examples", "--notify", "email", plugins=bad)
    assert r.exit_code == 3, r.output


def test_rules_select_and_ignore_by_prefix(env):
    data = json.loads(run(env, "rules", "--format", "json", "--select", "KAM3", "--ignore", "KAM306").stdout)
    codes = [r["code"] for s in data for r in s["rules"]]
    assert codes and all(c.startswith("KAM3") for c in codes)
    assert "KAM306" not in codes and "KAM301" in codes
    assert {s["ruleset"] for s in data} == {"missing_escalation_channels"}
