"""Checks under hostile conditions (issue 11): a concurrent import, a locked store, selections that
match nothing, an empty store, silences naming what doesn't exist."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kamrules import partition
from kamrules.check import builtin_ruleset_files, run_check, selection
from kamrules.cli import cli
from kamrules.errors import EXIT_BUSY, InputError, StoreBusy
from kamrules.generate import generate_to_dir
from kamrules.plugins import default_plugin_manager
from kamrules.ruleset import resolve
from kamrules.store import Store

AS_OF = "2026-10-31"
ENV = {"KAMRULES_LOAD_PLUGINS": "", "KAMRULES_CONFIG": "", "KAMRULES_DB": "", "KAMRULES_PLUGINS_DIR": ""}


def kamrules(*args, timeout=120) -> subprocess.CompletedProcess:
    """The real command in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "kamrules", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, **ENV},
        timeout=timeout,
    )


def cli_run(*args):
    return CliRunner().invoke(cli, list(args), env=ENV)


def alert_set(result) -> list:
    return sorted((a.fingerprint, a.severity, a.message) for a in result.alerts)


# -- one snapshot ---------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", [1, 2])
def test_check_reads_one_snapshot_while_an_import_commits(book_store, tmp_path, monkeypatch, jobs):
    """An import started mid-check (a real second process) must not change what the rest of the check
    reads: the alerts are those of the store before the import or after it, never a mix."""
    monkeypatch.setattr(partition, "MIN_PART", 20)  # the 200-account book in 10 parts (forked with jobs=2)
    data = tmp_path / "data"
    generate_to_dir(data, 200, seed=2, as_of=AS_OF)
    before = alert_set(run_check(book_store, AS_OF, jobs=1))
    shutil.copyfile(book_store.path, tmp_path / "after.db")
    with Store.open(tmp_path / "after.db", pm=book_store.pm) as s:
        s.import_paths([data])
        after = alert_set(run_check(s, AS_OF, jobs=1))
    assert before != after

    proc = None

    def progress(done: int) -> None:
        nonlocal proc
        if proc is None:  # the first part is done: import now
            proc = subprocess.Popen(
                [sys.executable, "-m", "kamrules", "--db", book_store.path, "import", str(data)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **ENV},
            )
            try:
                proc.wait(timeout=3)  # without one snapshot, it commits here, between parts
            except subprocess.TimeoutExpired:
                pass  # held off until the check ends

    result = run_check(book_store, AS_OF, jobs=jobs, part_size=20, progress=progress)
    assert proc is not None
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert result.summary.complete, result.summary.failures
    got = alert_set(result)
    assert got == before or got == after, (
        f"{len(got)} alerts: neither the {len(before)} before nor the {len(after)} after the import"
    )
    assert alert_set(run_check(book_store, AS_OF, jobs=1)) == after  # the import landed, after the check


# -- a locked store -------------------------------------------------------------------------------

HOLD = """import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN " + sys.argv[2])
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def locker():
    procs = []

    def hold(path, how: str):
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), how], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "locked"
        return p

    yield hold
    for p in procs:
        p.kill()
        p.wait()


@pytest.mark.parametrize("how", ["IMMEDIATE", "EXCLUSIVE"])
def test_check_on_a_locked_store_says_busy(book_store, locker, how):
    path = book_store.path
    book_store.close()
    holder = locker(path, how)
    r = kamrules("--db", path, "check", "--as-of", AS_OF, "--wait", "0.5")
    assert r.returncode == EXIT_BUSY, r.stdout + r.stderr
    assert "the store is busy: another kamrules process is writing; try again" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    holder.kill()
    holder.wait()
    r = kamrules("--db", path, "check", "--as-of", AS_OF, "--fail-on", "never", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)


def test_run_check_raises_store_busy(book_store, locker):
    locker(book_store.path, "IMMEDIATE")
    with pytest.raises(StoreBusy, match="the store is busy") as e:
        run_check(book_store, AS_OF, wait=0.2)
    assert e.value.exit_code == EXIT_BUSY == 5


def test_recording_on_a_locked_store_says_busy(book_store, locker):
    from kamrules.lifecycle import record_and_notify

    result = run_check(book_store, AS_OF)
    locker(book_store.path, "IMMEDIATE")
    book_store.conn.execute("PRAGMA busy_timeout = 200")
    with pytest.raises(StoreBusy, match="the store is busy.*not recorded in the history"):
        record_and_notify(book_store, result, notify=())


# -- selections -----------------------------------------------------------------------------------


def test_selection_is_case_insensitive(book_store):
    path = book_store.path
    book_store.close()
    upper = cli_run(
        "--db",
        path,
        "check",
        "--as-of",
        AS_OF,
        "--select",
        "KAM1",
        "--format",
        "json",
        "--no-history",
        "--fail-on",
        "never",
    )
    lower = cli_run(
        "--db",
        path,
        "check",
        "--as-of",
        AS_OF,
        "--select",
        "kam1",
        "--format",
        "json",
        "--no-history",
        "--fail-on",
        "never",
    )
    assert upper.exit_code == lower.exit_code == 0, lower.output
    assert json.loads(lower.stdout) == json.loads(upper.stdout) != []
    assert {a["code"][:4] for a in json.loads(lower.stdout)} == {"KAM1"}


@pytest.mark.parametrize(
    "args, message",
    [
        (("--select", "KAM9"), "--select 'KAM9' matches no rule; did you mean KAM"),
        (("--ignore", "KAM1O1"), "--ignore 'KAM1O1' matches no rule; did you mean KAM101?"),
        (("--select", "XYZ"), "--select 'XYZ' matches no rule"),
        (
            ("--ruleset", "over_subsidising", "--select", "KAM3"),
            "--select KAM3 matches no rule of over_subsidising (it selects rules of missing_escalation_channels)",
        ),
    ],
)
def test_selection_matching_nothing_is_a_usage_error(book_store, args, message):
    path = book_store.path
    book_store.close()
    r = cli_run("--db", path, "check", "--as-of", AS_OF, *args)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "Traceback" not in r.output
    assert r.stdout == ""


def test_rules_selection_matching_nothing(book_store):
    r = cli_run("--db", book_store.path, "rules", "--select", "kam30", "--ignore", "KAM999")
    assert r.exit_code == 2 and "--ignore 'KAM999' matches no rule" in r.stderr
    r = cli_run("--db", book_store.path, "rules", "--select", "kam30", "--format", "json")
    assert r.exit_code == 0 and {x["code"][:5] for s in json.loads(r.stdout) for x in s["rules"]} == {"KAM30"}


def test_selection_library():
    sets = resolve(builtin_ruleset_files(default_plugin_manager(), []), ())
    assert selection(sets, ["kam1", "KAM1"], ["kam104"]) == (("KAM1",), ("KAM104",))
    with pytest.raises(InputError, match="did you mean KAM2"):
        selection(sets, ["KAM2O"], [])


# -- an empty store -------------------------------------------------------------------------------


def test_check_on_an_empty_store(store):
    path = store.path
    store.close()
    r = cli_run("--db", path, "check")
    assert r.exit_code == 2, r.output
    assert "no accounts in the store" in r.stderr and "kamrules import DIR" in r.stderr
    with Store.open(path) as s, pytest.raises(InputError, match="no accounts"):
        run_check(s, AS_OF)


def test_demo_still_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli_run("demo", "--accounts", "60", "--owners", "1")
    assert r.exit_code == 0, r.output
    assert "60 accounts checked as of 2026-10-31" in r.stderr


# -- silences naming what doesn't exist ---------------------------------------------------------


def test_silence_add_warns_about_unknown_targets(book_store):
    path = book_store.path
    owner, account = book_store.conn.execute(
        "SELECT owner, id FROM accounts WHERE owner IS NOT NULL LIMIT 1"
    ).fetchone()
    book_store.close()
    r = cli_run(
        "--db",
        path,
        "silence",
        "add",
        "--rule",
        "KAM999",
        "--ruleset",
        "stalled_stage",
        "--account",
        "NOPE",
        "--owner",
        "nobody",
        "--until",
        "2099-01-01",
        "--comment",
        "typos",
    )
    assert r.exit_code == 0, r.output
    for warning in (
        "no rule code starts with KAM999",
        "no rule set named 'stalled_stage'",
        "no account 'NOPE' in the store",
        "no owner 'nobody' in the store",
    ):
        assert f"warning: {warning}; silence 1 added anyway" in r.stderr
    assert "silence 1 added" in r.stdout
    r = cli_run(
        "--db",
        path,
        "silence",
        "add",
        "--rule",
        "kam1",
        "--ruleset",
        "stalled_stages",
        "--account",
        account,
        "--owner",
        owner,
        "--until",
        "2099-01-01",
        "--comment",
        "known",
    )
    assert r.exit_code == 0 and "warning" not in r.stderr, r.output
    assert "silence 2 added: rule=KAM1 " in r.stdout
    listed = json.loads(cli_run("--db", path, "silence", "list", "--format", "json").stdout)
    assert [s["id"] for s in listed] == [1, 2]
