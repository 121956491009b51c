"""Plugins that fail, exit or hang: each hook call isolated and named, timeouts on SQL and derive, the allowlist."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_plugin_hooks import HELLO_FORMAT, fake_distribution

from kamrules.check import run_check
from kamrules.errors import PluginError
from kamrules.plugins import make_plugin_manager
from kamrules.store import Store

AS_OF = "2026-10-31"


def plugin_dir(tmp_path: Path, code: str, name: str = "bad") -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(code), encoding="utf-8")
    return folder


def kamrules(*args, cwd, env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("KAMRULES_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kamrules", *map(str, args)],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def clean(proc) -> str:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    return out


def counts(path) -> dict:
    with sqlite3.connect(path) as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: c.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


FAILING = """
    import sys
    from kamrules import hookimpl

    @hookimpl
    def {hook}({args}):
        {body}
"""


def failing(hook: str, body: str = 'raise RuntimeError("boom")', args: str = "") -> str:
    return FAILING.replace("{hook}", hook).replace("{args}", args).replace("{body}", body)


# -- 4. every hook call isolated -------------------------------------------------------


@pytest.mark.parametrize(
    "body, what",
    [
        ('raise RuntimeError("boom")', "RuntimeError: boom"),
        ("sys.exit(0)", "SystemExit: 0"),
        ("raise GeneratorExit()", "GeneratorExit"),
    ],
)
def test_register_tables_failure_is_named_exit_3_and_plugins_still_lists(tmp_path, book_store, body, what):
    folder = plugin_dir(tmp_path, failing("register_tables", body))
    before = counts(book_store.path)
    proc = kamrules("--plugins-dir", folder, "--db", book_store.path, "check", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert f"plugin {folder / 'bad.py'}: register_tables failed: {what}" in clean(proc)
    assert counts(book_store.path) == before
    listed = kamrules("--plugins-dir", folder, "plugins", cwd=tmp_path)
    assert listed.returncode == 0 and "bad.py" in clean(listed)


def test_register_notifiers_failure_spares_check_without_notify(tmp_path, book_store):
    folder = plugin_dir(tmp_path, failing("register_notifiers", 'raise ValueError("no pager")'))
    env = {"KAMRULES_PLUGINS_DIR": str(folder)}  # the environment's folder, like --plugins-dir
    proc = kamrules("--db", book_store.path, "check", "--fail-on", "never", "--format", "json", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    clean(proc)
    # a notifier the failing plugin may have contributed: named failure, exit 3, nothing recorded
    before = counts(book_store.path)
    proc = kamrules("--db", book_store.path, "check", "--fail-on", "never", "--notify", "pager", cwd=tmp_path, env=env)
    assert proc.returncode == 3, proc.stderr
    assert (
        f"unknown notifier pager: plugin {folder / 'bad.py'}: register_notifiers failed: ValueError: no pager"
        in clean(proc)
    )
    assert {k: v for k, v in counts(book_store.path).items() if k.startswith(("alert", "outbox"))} == {
        k: v for k, v in before.items() if k.startswith(("alert", "outbox"))
    }
    # `notify` with every notifier needs them all
    proc = kamrules("--db", book_store.path, "notify", cwd=tmp_path, env=env)
    assert proc.returncode == 3 and "register_notifiers failed: ValueError: no pager" in clean(proc)


def test_register_commands_failure_spares_other_commands_and_drops_its_half_made_ones(tmp_path, book_store):
    folder = plugin_dir(
        tmp_path,
        """
        import click
        from kamrules import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def half():
                click.echo("half made")
            raise SystemExit(0)
    """,
    )
    proc = kamrules("--plugins-dir", folder, "--db", book_store.path, "rules", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        f"Warning: plugin {folder / 'bad.py'}: register_commands failed: SystemExit: 0 (its commands are not available)"
        in clean(proc)
    )
    proc = kamrules("--plugins-dir", folder, "--db", book_store.path, "half", cwd=tmp_path)
    assert proc.returncode == 3 and "half made" not in proc.stdout
    assert "no command 'half': it may come from a plugin that failed" in clean(proc)
    proc = kamrules(
        "--plugins-dir",
        folder,
        "--db",
        book_store.path,
        "check",
        "--fail-on",
        "never",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and '"code": "KAM' in proc.stdout


def _import_data(tmp_path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "accounts.csv").write_text("id,name,tier,owner\nZ1,Zeta,key,Wang\n", encoding="utf-8")
    return data


@pytest.mark.parametrize(
    "body, code, what",
    [
        ('raise KeyError("col")', 3, "register_tables" and "rename_columns failed: KeyError: 'col'"),
        ("sys.exit(0)", 3, "rename_columns failed: SystemExit: 0"),
        ("return ['not', 'a', 'dict']", 3, "rename_columns returned ['not', 'a', 'dict']"),
        (
            'from kamrules.errors import InputError; raise InputError("unknown CRM layout")',
            2,
            "rename_columns: unknown CRM layout",
        ),
    ],
)
def test_rename_columns_failure_stops_the_import_and_changes_nothing(tmp_path, book_store, body, code, what):
    folder = plugin_dir(tmp_path, failing("rename_columns", body, "table, columns, path"))
    data = _import_data(tmp_path)
    before = counts(book_store.path)
    proc = kamrules("--plugins-dir", folder, "--db", book_store.path, "import", data, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert f"plugin {folder / 'bad.py'}: {what}" in clean(proc)
    assert counts(book_store.path) == before


def test_facts_and_rulesets_hooks_that_exit_are_failures_not_a_silent_exit(tmp_path, book_store):
    folder = plugin_dir(
        tmp_path, failing("register_facts", "sys.exit(0)") + failing("register_rulesets", "sys.exit(5)")
    )
    proc = kamrules("--plugins-dir", folder, "--db", book_store.path, "check", "--fail-on", "never", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    out = clean(proc)
    assert "register_facts" in out and "SystemExit: 0" in out and "register_rulesets" in out and "SystemExit: 5" in out


# -- 5. a provider's SQL or derive that hangs -------------------------------------------

SPIN_SQL = '''
    from kamrules import hookimpl
    from kamrules.facts import FactProvider

    SPIN = """WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)
              SELECT a.id AS account_id, (SELECT max(n) FROM r) AS spin_fact FROM accounts a"""

    @hookimpl
    def register_facts():
        return [FactProvider(name="spinner", facts=("spin_fact",), sql=SPIN)]
'''

SPIN_DERIVE = """
    import time
    from kamrules import hookimpl
    from kamrules.facts import FactProvider

    def spin(facts):
        {body}

    @hookimpl
    def register_facts():
        return [FactProvider(name="spinner", facts=(), derived=("spin_fact",), derive=spin,
                             sql="SELECT id AS account_id FROM accounts")]
"""

PORTFOLIO_DERIVE = """
    import time
    from kamrules import hookimpl
    from kamrules.facts import FactProvider

    def spin(facts):
        time.sleep(3600)

    @hookimpl
    def register_facts():
        return [FactProvider(name="spinner", facts=("n",), derived=("spin_fact",), derive=spin, scope="portfolio",
                             sql="SELECT count(*) AS n FROM accounts")]
"""


def _config(tmp_path, seconds) -> Path:
    cfg = tmp_path / "kamrules.toml"
    cfg.write_text(f"[check]\nplugin_timeout = {seconds}\n", encoding="utf-8")
    return cfg


@pytest.mark.parametrize(
    "code, what",
    [
        (SPIN_SQL, "its SQL ran longer than 1 s and was stopped (setting [check] plugin_timeout)"),
        (SPIN_DERIVE.replace("{body}", "time.sleep(3600)"), "derive ran longer than 1 s and was stopped"),
        # a busy loop that swallows every Exception is stopped all the same
        (
            SPIN_DERIVE.replace(
                "{body}",
                "while True:\n            try:\n                sum(range(1000))\n            except Exception:\n                pass",
            ),
            "derive ran longer than 1 s and was stopped",
        ),
    ],
    ids=["sql", "sleeping-derive", "busy-derive"],
)
def test_a_hanging_provider_is_stopped_by_the_timeout_and_named(tmp_path, book_store, code, what):
    folder = plugin_dir(tmp_path, code)
    started = time.perf_counter()
    proc = kamrules(
        "--plugins-dir",
        folder,
        "--config",
        _config(tmp_path, 1),
        "--db",
        book_store.path,
        "check",
        "--fail-on",
        "never",
        cwd=tmp_path,
    )
    assert time.perf_counter() - started < 30
    assert proc.returncode == 3, proc.stderr
    out = clean(proc)
    assert "spinner" in out and what in out


def test_a_hanging_portfolio_derive_is_stopped(tmp_path, book_store):
    pm = make_plugin_manager(plugins_dirs=[plugin_dir(tmp_path, PORTFOLIO_DERIVE)], load_entry_points=False)
    rules = tmp_path / "rs"
    rules.mkdir()
    (rules / "p.yaml").write_text(
        textwrap.dedent("""\
        ruleset: spinning
        rules:
          - {code: SPN101, name: spin, scope: portfolio, when: ["spin_fact > 1"], message: "m", action: "a"}
    """),
        encoding="utf-8",
    )
    with Store.open(book_store.path, pm=pm) as store:
        started = time.perf_counter()
        result = run_check(store, as_of=AS_OF, pm=pm, rulesets_dirs=[rules], plugin_timeout=0.4)
    assert time.perf_counter() - started < 20
    assert any(w == "fact provider spinner" and "derive ran longer than 0.4 s" in m for w, m in result.summary.failures)


def test_derive_timeout_in_forked_workers_waits_once_per_worker(tmp_path, book_store):
    pm = make_plugin_manager(
        plugins_dirs=[plugin_dir(tmp_path, SPIN_DERIVE.replace("{body}", "time.sleep(3600)"))], load_entry_points=False
    )
    with Store.open(book_store.path, pm=pm) as store:
        started = time.perf_counter()
        result = run_check(store, as_of=AS_OF, pm=pm, jobs=2, part_size=20, plugin_timeout=0.4)  # 10 parts
        took = time.perf_counter() - started
    assert took < 10  # not 10 parts x the timeout
    assert any(w == "fact provider spinner" and "derive ran longer than 0.4 s" in m for w, m in result.summary.failures)
    assert result.summary.accounts_checked == 200 and result.alerts  # the other rules still ran


def test_exit_inside_derive_is_a_failure_not_an_exit(tmp_path, book_store):
    pm = make_plugin_manager(
        plugins_dirs=[plugin_dir(tmp_path, SPIN_DERIVE.replace("{body}", "raise SystemExit(0)"))],
        load_entry_points=False,
    )
    with Store.open(book_store.path, pm=pm) as store:
        result = run_check(store, as_of=AS_OF, pm=pm, jobs=1)
    assert ("fact provider spinner (derive)", "failed on 200 accounts in all") in result.summary.failures


def test_the_timeout_is_a_validated_setting(tmp_path, book_store):
    proc = kamrules("--config", _config(tmp_path, 0), "--db", book_store.path, "check", cwd=tmp_path)
    assert proc.returncode == 2 and "check.plugin_timeout" in clean(proc)


def test_an_earlier_alarm_is_given_back(tmp_path, book_store):
    import signal

    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        pm = make_plugin_manager(
            plugins_dirs=[plugin_dir(tmp_path, SPIN_DERIVE.replace("{body}", "return {'spin_fact': 1}"))],
            load_entry_points=False,
        )
        with Store.open(book_store.path, pm=pm) as store:
            run_check(store, as_of=AS_OF, pm=pm, jobs=1, plugin_timeout=5)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 30 and signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- 6. KAMRULES_LOAD_PLUGINS naming a plugin that is not installed -----------------------


def test_allowlist_naming_a_missing_plugin_is_a_usage_error_with_a_suggestion(tmp_path, monkeypatch):
    site = tmp_path / "site"
    fake_distribution(
        site, "kamrules-fakeplug", "0.3.1", "fakeplug", "fakeplug_iso", HELLO_FORMAT.replace("{name}", "fake-count")
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("KAMRULES_LOAD_PLUGINS", "fakeplug, fakeplgu")
    with pytest.raises(PluginError) as e:
        make_plugin_manager()
    assert e.value.exit_code == 2
    assert "KAMRULES_LOAD_PLUGINS names plugins that are not installed: 'fakeplgu' (did you mean 'fakeplug'?)" in str(
        e.value
    )
    proc = kamrules(
        "plugins",
        cwd=tmp_path,
        env={
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "KAMRULES_LOAD_PLUGINS": "other",
        },
    )
    assert proc.returncode == 2 and "'other'" in clean(proc) and "kamrules-fakeplug" in proc.stderr
