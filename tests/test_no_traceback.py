"""Tracebacks are defects: every registered command, fed hostile input, answers cleanly (issue 11).

The commands are enumerated from the click group (subcommands included), so a new command
is covered as soon as it is registered. Each gets: a store path in a missing folder, a folder,
a foreign SQLite file, a binary file and an empty store as --db; a nonexistent file, a folder and
a binary file for its arguments; garbage for each of its options. No output may contain
"Traceback", no exception may escape, and the exit code must be a documented one (0-4).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from kamrules.cli import cli
from kamrules.cliutils import Env
from kamrules.store import Store

GARBAGE = ["garbage\u202e\x1b[2J", "-1", "99999999999999999999999", ""]


def commands() -> list[tuple[str, ...]]:
    env = Env()
    env.pm.hook.register_commands(cli=cli)

    def walk(group, path):
        for name, cmd in sorted(group.commands.items()):
            yield path + (name,), cmd
            if isinstance(cmd, click.Group):
                yield from walk(cmd, path + (name,))

    return [(path, cmd) for path, cmd in walk(cli, ())]


ALL = commands()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Files to feed the commands: {kind: path}."""
    d = tmp_path_factory.mktemp("hostile")
    with sqlite3.connect(d / "foreign.db") as c:
        c.execute("CREATE TABLE customers (id, name)")
    (d / "binary.db").write_bytes(bytes(range(256)) * 64)
    (d / "folder.db").mkdir()
    with Store.open(d / "empty.db") as s:
        s.init()
    data = d / "binary"
    data.mkdir()
    (data / "accounts.csv").write_bytes(b"\xff\xfe\x00\x01" + bytes(range(256)) * 40)
    (d / "binary.yaml").write_bytes(b"\x00\x9c\xff" * 100)
    return {
        "missing-folder": d / "no" / "such" / "x.db",
        "folder": d / "folder.db",
        "foreign": d / "foreign.db",
        "binary": d / "binary.db",
        "empty": d / "empty.db",
        "data-binary": data,
        "yaml-binary": d / "binary.yaml",
        "nonexistent": d / "nope.csv",
    }


# What a command needs besides its store, so that the hostile part is what gets tested.
NEEDS = {
    ("generate",): ["--accounts", "2"],
    ("silence", "add"): ["--until", "2099-01-01", "--comment", "x"],
    ("notify", "test"): ["--to", "nobody@example.invalid"],
    ("demo",): ["--accounts", "1"],
}


def _args_for(path, cmd, hostile, value) -> list[str]:
    out = []
    for p in cmd.params:
        if isinstance(p, click.Argument):
            out.append(str(value))
    return out


def invoke(tmp_path, args) -> None:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    where = " ".join(str(a) for a in args)
    assert r.exception is None or isinstance(r.exception, SystemExit), (
        f"{where}: {type(r.exception).__name__}: {r.exception}"
    )
    assert "Traceback" not in r.output, f"{where}:\n{r.output}"
    assert r.exit_code in (0, 1, 2, 3, 4), f"{where}: exit {r.exit_code}\n{r.output}"


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("KAMRULES_CONFIG", "KAMRULES_DB", "KAMRULES_PLUGINS_DIR", "KAMRULES_LOAD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAMRULES_SMTP_HOST", "127.0.0.1")  # a closed port: refused at once
    monkeypatch.setenv("KAMRULES_SMTP_PORT", "9")


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_no_traceback(tmp_path, hostile, path, cmd):
    needs = NEEDS.get(path, [])
    # 1. hostile stores (for demo: its own --db)
    for kind in ("missing-folder", "folder", "foreign", "binary", "empty"):
        db = hostile[kind]
        if path == ("demo",):
            invoke(tmp_path, list(path) + needs + ["--db", db])
            continue
        args = _args_for(path, cmd, hostile, "A1" if kind != "empty" else hostile["nonexistent"])
        invoke(tmp_path, ["--db", db] + list(path) + args + needs)
    # 2. hostile arguments on an empty store
    if any(isinstance(p, click.Argument) for p in cmd.params):
        for kind in ("nonexistent", "folder", "data-binary", "yaml-binary"):
            args = _args_for(path, cmd, hostile, hostile[kind])
            invoke(
                tmp_path,
                ["--db", hostile["empty"]]
                + list(path)
                + args
                + needs
                + (["--dir", tmp_path] if path == ("plugin", "new") else []),
            )
    # 3. garbage for each option (flags need no value)
    for p in cmd.params:
        if not isinstance(p, click.Option) or p.is_flag or p.name in ("help",):
            continue
        for value in GARBAGE:
            args = _args_for(path, cmd, hostile, "A1")
            invoke(tmp_path, ["--db", hostile["empty"]] + list(path) + args + needs + [p.opts[0], value])


@pytest.mark.parametrize(
    "args",
    [
        ["--db", "{foreign}", "check"],
        ["--db", "{binary}", "alerts"],
        ["--db", "{empty}", "import", "{data-binary}"],
        ["--db", "{empty}", "check", "-o", "{folder}"],
    ],
)
def test_no_traceback_real_process(hostile, tmp_path, args):
    """The same through a real process: stderr as a user sees it."""
    argv = [
        a.format(**{k.replace("-", "_"): v for k, v in hostile.items()}) if "{" not in a else str(hostile[a[1:-1]])
        for a in args
    ]
    r = subprocess.run(
        [sys.executable, "-m", "kamrules"] + argv,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("KAMRULES_")},
    )
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    assert r.returncode == 2, r.stderr
