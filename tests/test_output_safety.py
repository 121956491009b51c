"""Output files: never the store, an input or a non-plain file; written whole or not at all (issue 11)."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kamrules.cli import cli
from kamrules.outputs import OutputRefused, atomic_output, check_output_path

KAMRULES = [sys.executable, "-m", "kamrules"]


@pytest.fixture
def env(tmp_path, monkeypatch, _book_template):
    """tmp_path as the working folder holding book.db (200 generated accounts) and data/ (files for import)."""
    monkeypatch.chdir(tmp_path)
    for var in ("KAMRULES_CONFIG", "KAMRULES_DB", "KAMRULES_PLUGINS_DIR", "KAMRULES_LOAD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    shutil.copyfile(_book_template, tmp_path / "book.db")
    data = tmp_path / "data"
    data.mkdir()
    (data / "accounts.csv").write_text("id,name,tier\nA1,华东电气,key\nA2,,key\n", encoding="utf-8")
    return tmp_path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _target(env: Path, kind: str) -> Path:
    """An output path that must be refused, made in ``env``."""
    if kind == "store":
        return env / "book.db"
    if kind == "relative":
        return Path("..") / env.name / "book.db"
    if kind == "symlink":
        os.symlink(env / "book.db", env / "link.db")
        return env / "link.db"
    if kind == "hardlink":
        os.link(env / "book.db", env / "hard.db")
        return env / "hard.db"
    if kind == "wal":
        (env / "book.db-wal").write_bytes(b"")
        return env / "book.db-wal"
    if kind == "journal":  # refused by name even when the companion does not exist now
        return env / "book.db-journal"
    if kind == "folder":
        (env / "out").mkdir()
        return env / "out"
    if kind == "fifo":
        os.mkfifo(env / "pipe")
        return env / "pipe"
    if kind == "device":
        return Path("/dev/null")
    raise AssertionError(kind)


REFUSED = ["store", "relative", "symlink", "hardlink", "wal", "journal", "folder", "fifo", "device"]


@pytest.mark.parametrize("kind", REFUSED)
def test_check_output_refuses_store_and_non_files(env, kind):
    before = digest(env / "book.db")
    target = _target(env, kind)
    r = invoke(
        "--db", env / "book.db", "check", "--as-of", "2026-10-31", "--format", "csv", "--output", target, "--no-history"
    )
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert any(w in r.output for w in ("refusing", "is a directory")), r.output
    assert digest(env / "book.db") == before


@pytest.mark.parametrize("kind", ["store", "symlink", "hardlink", "relative"])
def test_import_skip_invalid_refuses_the_store(env, kind):
    before = digest(env / "book.db")
    target = _target(env, kind)
    r = invoke("--db", env / "book.db", "import", env / "data", "--skip-invalid", target)
    assert r.exit_code == 2, r.output
    assert "is the store" in r.output
    assert digest(env / "book.db") == before


@pytest.mark.parametrize("given", ["file", "folder"])
def test_import_skip_invalid_refuses_an_input_file(env, given):
    data = env / "data" / "accounts.csv"
    before = data.read_bytes()
    source = data if given == "file" else env / "data"
    r = invoke("--db", env / "book.db", "import", source, "--skip-invalid", data)
    assert r.exit_code == 2, r.output
    assert "is an input file" in r.output
    assert data.read_bytes() == before


def test_import_skip_invalid_still_writes_a_new_file(env):
    r = invoke("--db", env / "book.db", "import", env / "data", "--skip-invalid", env / "rejects.csv")
    assert r.exit_code == 1, r.output  # a refused row: exit 1 (docs/cli.md)
    assert "A2" in (env / "rejects.csv").read_text(encoding="utf-8-sig")


def test_check_output_refuses_a_rule_file(env):
    rules = env / "rules"
    rules.mkdir()
    target = rules / "over_subsidising.yaml"
    shutil.copyfile(Path(__file__).parent.parent / "rulesets" / "over_subsidising" / "rules.yaml", target)
    before = target.read_bytes()
    r = invoke("--db", env / "book.db", "check", "--rulesets", rules, "--output", target, "--no-history")
    assert r.exit_code == 2 and "is an input file" in r.output, r.output
    assert target.read_bytes() == before


def test_junit_refuses_the_test_file(env):
    spec = env / "t.test.yaml"
    spec.write_text("cases: []\n", encoding="utf-8")
    r = invoke("test", spec, "--junit", spec)
    assert r.exit_code == 2 and "is an input file" in r.output, r.output
    assert spec.read_text(encoding="utf-8") == "cases: []\n"


def test_generate_out_refuses_a_link_to_the_store(env):
    before = digest(env / "book.db")
    out = env / "gen"
    out.mkdir()
    os.symlink(env / "book.db", out / "accounts.csv")
    r = invoke("--db", env / "book.db", "generate", "--accounts", "5", "--out", out)
    assert r.exit_code == 2 and "is the store" in r.output, r.output
    assert digest(env / "book.db") == before


def test_demo_refuses_to_delete_a_foreign_database(env):
    import sqlite3

    foreign = env / "crm.db"
    with sqlite3.connect(foreign) as c:
        c.execute("CREATE TABLE customers (id, name)")
    before = digest(foreign)
    r = invoke("demo", "--accounts", "5", "--db", foreign)
    assert r.exit_code == 2 and "not a kamrules store" in r.output, r.output
    assert digest(foreign) == before


def test_check_output_through_a_symlink_replaces_the_target(env):
    (env / "reports").mkdir()
    (env / "reports" / "alerts.json").write_text("old", encoding="utf-8")
    os.symlink(env / "reports" / "alerts.json", env / "latest.json")
    r = invoke(
        "--db",
        env / "book.db",
        "check",
        "--as-of",
        "2026-10-31",
        "--format",
        "json",
        "-o",
        env / "latest.json",
        "--no-history",
    )
    assert r.exit_code in (0, 1), r.output
    assert (env / "latest.json").is_symlink()
    assert (env / "reports" / "alerts.json").read_text(encoding="utf-8").startswith("[")
    assert sorted(os.listdir(env / "reports")) == ["alerts.json"]


# -- atomic writes --------------------------------------------------------------
def test_atomic_output_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("old report", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as f:
            f.write("half of the new")
            raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "old report"
    assert os.listdir(tmp_path) == ["report.txt"]


def test_atomic_output_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("old", encoding="utf-8")
    os.chmod(target, 0o640)
    with atomic_output(target) as f:
        f.write("new")
    assert target.read_text(encoding="utf-8") == "new" and (target.stat().st_mode & 0o777) == 0o640


def test_check_output_path_library_call(tmp_path):
    store = tmp_path / "k.db"
    store.write_bytes(b"")
    with pytest.raises(OutputRefused):
        check_output_path(tmp_path / "k.db-shm", store)
    with pytest.raises(OutputRefused, match="does not exist"):
        check_output_path(tmp_path / "no" / "x.csv", store)
    assert check_output_path(tmp_path / "x.csv", store, [tmp_path]) == tmp_path / "x.csv"


SLOW_FORMAT = """
import os, time
from kamrules import hookimpl
from kamrules.formats import OutputFormat

def render(alerts, summary):
    for i, a in enumerate(alerts):
        yield f"{a.code} {a.account_id}\\n" * 200
        if i == 20:
            open(os.environ["MARKER"], "w").close()
            time.sleep(60)

@hookimpl
def register_output_formats():
    return [OutputFormat("slow", render, "sleeps midway", "txt")]
"""


def test_kill_9_mid_write_leaves_the_old_report_and_no_temp_file(env, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "slow_format.py").write_text(SLOW_FORMAT, encoding="utf-8")
    out = tmp_path / "reports"
    out.mkdir()
    (out / "alerts.txt").write_text("yesterday's report\n", encoding="utf-8")
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        KAMRULES
        + [
            "--plugins-dir",
            str(plugins),
            "--db",
            str(env / "book.db"),
            "check",
            "--as-of",
            "2026-10-31",
            "--format",
            "slow",
            "-o",
            str(out / "alerts.txt"),
            "--no-history",
            "--jobs",
            "1",
        ],
        env={**os.environ, "MARKER": str(marker)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the format never reached the middle of the report"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (out / "alerts.txt").read_text(encoding="utf-8") == "yesterday's report\n"
    assert os.listdir(out) == ["alerts.txt"]  # no .part / .tmp file left behind


def _check_to(env: Path, target: Path, preexec=None):
    return subprocess.run(
        KAMRULES
        + [
            "--db",
            str(env / "book.db"),
            "check",
            "--as-of",
            "2026-10-31",
            "--format",
            "json",
            "-o",
            str(target),
            "--no-history",
            "--jobs",
            "1",
        ],
        capture_output=True,
        text=True,
        preexec_fn=preexec,
        timeout=120,
    )


def test_full_disk_tmpfs_leaves_the_old_report(env, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a 32 KiB tmpfs here ({done.stderr.strip() or 'mount failed'}); see the RLIMIT_FSIZE test"
        )
    try:
        (mnt / "alerts.json").write_text("old report\n", encoding="utf-8")
        r = _check_to(env, mnt / "alerts.json")
        assert r.returncode == 2, r.stderr
        assert "cannot write the report" in r.stderr and "Traceback" not in r.stderr
        assert (mnt / "alerts.json").read_text(encoding="utf-8") == "old report\n"
        assert os.listdir(mnt) == ["alerts.json"]
        full = _check_to(env, tmp_path / "alerts.json")  # the report really is larger than the disk
        assert full.returncode in (0, 1) and (tmp_path / "alerts.json").stat().st_size > 32 * 1024
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_file_size_limit_leaves_the_old_report(env, tmp_path):
    """The same as a full disk without a mount: RLIMIT_FSIZE makes writes past 32 KiB fail (EFBIG)."""
    out = tmp_path / "reports"
    out.mkdir()
    (out / "alerts.json").write_text("old report\n", encoding="utf-8")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, 32 * 1024))

    r = _check_to(env, out / "alerts.json", preexec=limit)
    assert r.returncode == 2, r.stderr
    assert "cannot write the report" in r.stderr and "Traceback" not in r.stderr
    assert (out / "alerts.json").read_text(encoding="utf-8") == "old report\n"
    assert os.listdir(out) == ["alerts.json"]
