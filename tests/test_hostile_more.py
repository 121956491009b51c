"""More hostile input against the merged issue-11 work: each case one that still lost, forged or crashed.

Real SQLite files, real subprocesses (the CLI as a user runs it), real plugin folders; each test
states what main did before the fix in its docstring.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ESC_TITLE = "\x1b]0;pwn\x07"


def run(*args, cwd=None, env=None, timeout=120):
    full = {
        **os.environ,
        "KAMRULES_LOAD_PLUGINS": "",
        "KAMRULES_CONFIG": "",
        "KAMRULES_DB": "",
        "KAMRULES_PLUGINS_DIR": "",
        **(env or {}),
    }
    full = {k: v for k, v in full.items() if v != "" or k == "KAMRULES_LOAD_PLUGINS"}
    r = subprocess.run(
        [sys.executable, "-m", "kamrules", *map(str, args)],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    return r


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def book(tmp_path, _book_template):
    """tmp_path/book.db: the 200-account generated book, with one recorded check."""
    db = tmp_path / "book.db"
    shutil.copyfile(_book_template, db)
    return db


def _fresh_store(tmp_path) -> Path:
    db = tmp_path / "s.db"
    r = run("--db", db, "init")
    assert r.returncode == 0, r.stderr
    return db


def _accounts(db) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT count(*) FROM accounts").fetchone()[0]


# -- output paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["store", "symlink", "hardlink", "relative", "wal"])
def test_health_output_refuses_the_store(book, kind):
    """Before: `health -o book.db` replaced the store with the report, exit 0."""
    folder = book.parent
    target = {"store": book, "relative": Path("..") / folder.name / "book.db", "wal": folder / "book.db-wal"}.get(kind)
    if kind == "symlink":
        target = folder / "link.db"
        os.symlink(book, target)
    elif kind == "hardlink":
        target = folder / "hard.db"
        os.link(book, target)
    elif kind == "wal":
        target.write_bytes(b"")
    before = digest(book)
    r = run("--db", book, "health", "--as-of", "2026-10-31", "-o", target, cwd=folder)
    assert r.returncode == 2, r.stderr
    assert "is the store" in r.stderr
    assert digest(book) == before


def test_health_output_refuses_the_scorecard_and_writes_whole_files(book, tmp_path):
    """Before: `-o` was opened with open(..., 'w') with no check: the scorecard given could be overwritten."""
    import kamrules

    card = tmp_path / "card.yaml"
    shutil.copyfile(Path(kamrules.__file__).with_name("scorecard.yaml"), card)
    before = digest(card)
    r = run("--db", book, "health", "--as-of", "2026-10-31", "--scorecard", card, "-o", card)
    assert r.returncode == 2 and "is an input file" in r.stderr, r.stderr
    assert digest(card) == before
    out = tmp_path / "h.json"
    r = run("--db", book, "health", "--as-of", "2026-10-31", "--format", "json", "-o", out)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(out.read_text())) == 200
    assert sorted(os.listdir(tmp_path)) == ["book.db", "card.yaml", "h.json"]  # no temporary file left


def test_health_csv_guards_formula_cells(book):
    """Before: health --format csv wrote '=HYPERLINK(...)' names as they were (check's CSV guarded them)."""
    with sqlite3.connect(book) as c:
        acc = c.execute("SELECT id FROM accounts ORDER BY id LIMIT 1").fetchone()[0]
        c.execute("UPDATE accounts SET name = ?, owner = ? WHERE id = ?", ('=HYPERLINK("http://evil")', "-Bob", acc))
    r = run("--db", book, "health", "--as-of", "2026-10-31", "--format", "csv")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith(acc + ","))
    assert "'=HYPERLINK" in line and ",'-Bob," in line
    raw = run("--db", book, "health", "--as-of", "2026-10-31", "--format", "csv", "--csv-raw")
    line = next(ln for ln in raw.stdout.splitlines() if ln.startswith(acc + ","))
    assert '"=HYPERLINK' in line and ",-Bob," in line
    assert run("--db", book, "health", "--csv-raw").returncode == 2  # --csv-raw without --format csv


def test_skip_invalid_part_symlink_to_the_store_is_not_followed(tmp_path):
    """Before: the rejects went to '<FILE>.part' opened with open(): a symlink rej.csv.part -> the store
    replaced the store with CSV (and the message said 'the store was not changed')."""
    db = _fresh_store(tmp_path)
    data = tmp_path / "d"
    data.mkdir()
    (data / "accounts.csv").write_text("id,name,tier\nA1,x,key\nA2,y,bogus\n", encoding="utf-8")
    os.symlink(db, tmp_path / "rej.csv.part")
    r = run("--db", db, "import", data, "--skip-invalid", tmp_path / "rej.csv")
    assert r.returncode == 1, r.stderr
    assert _accounts(db) == 1  # the store is a store, with the valid row
    assert "bogus" in (tmp_path / "rej.csv").read_text(encoding="utf-8-sig")
    assert os.readlink(tmp_path / "rej.csv.part") == str(db)


def test_notify_dry_run_does_not_write_through_a_symlink_to_the_store(book, tmp_path):
    """Before: `notify --dry-run DIR` wrote each message with write_bytes(): a symlink in DIR named like
    the message file replaced the store, exit 0."""
    from smtp_server import free_port

    with sqlite3.connect(book) as c:
        c.execute("UPDATE accounts SET owner_email = 'boss@example.com'")
    env = {
        "KAMRULES_SMTP_HOST": "127.0.0.1",
        "KAMRULES_SMTP_PORT": str(free_port()),
        "KAMRULES_SMTP_TLS": "none",
        "KAMRULES_SMTP_FROM": "kamrules <k@example.com>",
    }
    r = run("--db", book, "check", "--as-of", "2026-10-31", "--notify", "email", env=env)
    assert r.returncode == 4, r.stderr  # queued, undelivered: no server
    out = tmp_path / "dry"
    out.mkdir()
    os.symlink(book, out / "00001-email-boss@example.com.eml")
    before = digest(book)
    r = run("--db", book, "notify", "--dry-run", out, env=env)
    assert r.returncode == 2 and "is the store" in r.stderr, r.stderr
    assert digest(book) == before
    os.unlink(out / "00001-email-boss@example.com.eml")
    r = run("--db", book, "notify", "--dry-run", out, env=env)
    assert r.returncode == 0, r.stderr
    assert (out / "00001-email-boss@example.com.eml").read_bytes().startswith(b"Subject:")


def test_generate_out_failure_leaves_the_folder_as_it_was(tmp_path):
    """Before: generate --out opened every file with open(..., 'w') up front: a failure midway left
    truncated (here: emptied) files in place of the previous ones."""
    plugins = tmp_path / "p"
    plugins.mkdir()
    (plugins / "bad.py").write_text(
        "from kamrules import hookimpl\n\n@hookimpl\ndef register_defect_recipes():\n    return 5\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "accounts.csv").write_text("old\n")
    r = run("--plugins-dir", plugins, "generate", "--accounts", "20", "--out", out)
    assert r.returncode == 3, r.stderr
    assert "register_defect_recipes" in r.stderr and "expected a list" in r.stderr
    assert os.listdir(out) == ["accounts.csv"] and (out / "accounts.csv").read_text() == "old\n"


# -- data files -----------------------------------------------------------------------------------


def _runaway_csv(folder: Path, close: bool = True) -> Path:
    folder.mkdir()
    rows = ["id,name,tier,notes"]
    for i in range(200):
        note = '"opened here' if i == 3 else ('closed by a stray quote"' if close and i == 100 else "fine")
        rows.append(f"A{i},n{i},key,{note}")
    (folder / "accounts.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("workers", ["0", "1"])
def test_quote_closed_rows_later_by_a_stray_quote_is_refused(tmp_path, workers):
    """Before: a quote opened in the last column and closed 97 rows later by another stray quote
    swallowed those 97 rows into one notes value, exit 0 (only >100 line breaks or EOF were caught)."""
    db = _fresh_store(tmp_path)
    r = run("--db", db, "import", _runaway_csv(tmp_path / "d"), env={"KAMRULES_IMPORT_WORKERS": workers})
    assert r.returncode == 2, r.stderr
    assert "accounts.csv:5:" in r.stderr and "look like records" in r.stderr
    assert _accounts(db) == 0


def test_multi_line_notes_are_still_accepted(tmp_path):
    db = _fresh_store(tmp_path)
    d = tmp_path / "d"
    d.mkdir()
    note = '"called, no answer\nemailed the buyer, a, b\nvisited\nsigned, at last"'
    (d / "accounts.csv").write_text(
        "id,name,tier,notes\n" + "".join(f"A{i},n{i},key,{note}\n" for i in range(20)), encoding="utf-8"
    )
    r = run("--db", db, "import", d)
    assert r.returncode == 0, r.stderr
    assert _accounts(db) == 20


@pytest.mark.parametrize("codec, name", [("cp1251", "Windows-1251"), ("koi8_r", "KOI8-R")])
def test_cyrillic_file_names_its_encoding(tmp_path, codec, name):
    """Before: a Cyrillic file was told 'e.g. --encoding cp1252', which stores mojibake."""
    db = _fresh_store(tmp_path)
    d = tmp_path / "d"
    d.mkdir()
    text = "id,name,tier\n" + "".join(f"A{i},Газпром нефть {i},key\n" for i in range(5))
    (d / "accounts.csv").write_bytes(text.encode(codec))
    r = run("--db", db, "import", d)
    assert r.returncode == 2 and name in r.stderr and f"--encoding {codec}" in r.stderr, r.stderr
    r = run("--db", db, "import", d, "--encoding", codec)
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT name FROM accounts WHERE id = 'A1'").fetchone()[0] == "Газпром нефть 1"


@pytest.mark.parametrize(
    "text, what",
    [
        ('[{"id": "A1", "name": "x", "tier": "key", "revenue_12m": NaN}]', "NaN is not a JSON number"),
        ('[{"id": "A1", "name": "x", "tier": "key", "score": -Infinity}]', "-Infinity is not a JSON number"),
        ('[{"id": "A1", "name": "x", "name": "y", "tier": "key"}]', "key 'name' appears twice"),
        ('[{"id": 1e400, "name": "x", "tier": "key"}]', "too large"),
    ],
)
def test_json_that_python_reads_but_json_does_not_mean_is_refused(tmp_path, text, what):
    """Before: NaN and Infinity were stored as 'nan'/'inf', a second 'name' silently won, 1e400 became id 'inf'."""
    db = _fresh_store(tmp_path)
    d = tmp_path / "d"
    d.mkdir()
    (d / "accounts.json").write_text(text, encoding="utf-8")
    r = run("--db", db, "import", d)
    assert r.returncode == 2, r.stderr
    assert "accounts.json:1:" in r.stderr and what in r.stderr, r.stderr
    assert _accounts(db) == 0


def test_json_lone_surrogate_is_a_refused_row(tmp_path):
    """Before: a "\\ud800" escape reached SQLite: UnicodeEncodeError traceback, exit 1."""
    db = _fresh_store(tmp_path)
    d = tmp_path / "d"
    d.mkdir()
    (d / "accounts.jsonl").write_text(
        '{"id": "A1", "name": "ok", "tier": "key"}\n{"id": "A2", "name": "x\\ud800y", "tier": "key"}\n'
    )
    r = run("--db", db, "import", d)
    assert r.returncode == 2 and "accounts.jsonl:2: name:" in r.stderr and "lone surrogate" in r.stderr, r.stderr
    r = run("--db", db, "import", d, "--skip-invalid", tmp_path / "rej.csv")
    assert r.returncode == 1, r.stderr
    assert _accounts(db) == 1
    assert "x\\ud800y" in (tmp_path / "rej.csv").read_text(encoding="utf-8-sig")


# -- plugins --------------------------------------------------------------------------------------


def _plugin(tmp_path, body: str) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    (folder / "p.py").write_text("from kamrules import hookimpl\n\n" + body)
    return folder


@pytest.mark.parametrize(
    "hook, value, command, code",
    [
        # the format the plugin would have added is asked for: missing (exit 2), the failure named
        ("register_output_formats", '"x"', ("check", "--as-of", "2026-10-31", "--no-history", "--format", "count"), 2),
        ("register_rulesets", "[None]", ("check", "--as-of", "2026-10-31", "--no-history"), 3),
        ("register_rulesets", "5", ("rules",), 3),
        ("register_facts", "5", ("check", "--as-of", "2026-10-31", "--no-history"), 3),
        ("register_tables", "5", ("notify",), 3),
        ("register_notifiers", '"x"', ("notify",), 3),
    ],
)
def test_a_hook_result_of_the_wrong_shape_is_a_named_plugin_failure(book, tmp_path, hook, value, command, code):
    """Before: AttributeError / TypeError tracebacks, exit 1, far from the plugin that caused them."""
    plugins = _plugin(tmp_path, f"@hookimpl\ndef {hook}():\n    return {value}\n")
    r = run("--db", book, "--plugins-dir", plugins, *command)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert f"p.py: {hook}" in r.stderr and "expected" in r.stderr, r.stderr


def test_rename_columns_mapping_of_non_text_is_refused(book, tmp_path):
    plugins = _plugin(tmp_path, "@hookimpl\ndef rename_columns(table, columns, path):\n    return {'name': 5}\n")
    d = tmp_path / "d"
    d.mkdir()
    (d / "accounts.csv").write_text("id,name,tier\nZ1,x,key\n")
    before = digest(book)
    r = run("--db", book, "--plugins-dir", plugins, "import", d)
    assert r.returncode == 3 and "rename_columns returned {'name': 5}" in r.stderr, r.stderr
    assert digest(book) == before


def test_sys_exit_at_plugin_import_is_a_load_failure(book, tmp_path):
    """Before: a plugin module calling sys.exit(0) at import ended every command silently with exit 0."""
    plugins = _plugin(tmp_path, "import sys\nsys.exit(0)\n")
    r = run("--db", book, "--plugins-dir", plugins, "check", "--as-of", "2026-10-31", "--no-history")
    assert r.returncode == 2, r.stderr
    assert "p.py: plugin failed to load: SystemExit: 0" in r.stderr


def test_misspelt_hook_names_the_closest_hook(book, tmp_path):
    plugins = _plugin(tmp_path, "@hookimpl\ndef register_fact():\n    return []\n")
    r = run("--db", book, "--plugins-dir", plugins, "rules")
    assert r.returncode == 2
    assert "unknown hook 'register_fact'" in r.stderr and "did you mean 'register_facts'?" in r.stderr, r.stderr
    assert "<module" not in r.stderr  # the plugin by its file, not a module repr


def test_plugins_list_shows_escapes_in_plugin_names(tmp_path):
    """Before: `kamrules plugins` printed a plugin file's name raw: an OSC title sequence reached the terminal."""
    folder = tmp_path / f"p{ESC_TITLE}"
    folder.mkdir()
    (folder / "x.py").write_text(
        "from kamrules import hookimpl\n\n@hookimpl\ndef register_rulesets():\n    return []\n"
    )
    r = run("--plugins-dir", folder, "plugins")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "p\\x1b]0;pwn\\x07/x.py" in r.stdout


def test_junit_never_overwrites_a_rule_file_a_case_reads(tmp_path):
    """Before: `test T --junit my/rules.yaml` replaced the rule file of the case's `rulesets: [my]` (exit 0):
    only the test files themselves were inputs."""
    import kamrules

    my = tmp_path / "my"
    my.mkdir()
    source = Path(kamrules.__file__).parent.parent / "rulesets" / "missing_escalation_channels" / "rules.yaml"
    text = source.read_text(encoding="utf-8").replace("ruleset: missing_escalation_channels", "ruleset: tuned_mec")
    (my / "rules.yaml").write_text(text.replace("KAM3", "TUN3"), encoding="utf-8")
    (tmp_path / "t.test.yaml").write_text(
        "as_of: 2026-10-31\nrulesets: [my]\nselect: [TUN]\nbook:\n  accounts:\n"
        "    - {id: K1, name: a, tier: key, status: active, created_on: 2020-01-01}\n"
        "cases:\n  - name: c\n    quiet: [K9]\n",
        encoding="utf-8",
    )
    before = digest(my / "rules.yaml")
    r = run("test", tmp_path / "t.test.yaml", "--junit", my / "rules.yaml")
    assert r.returncode == 2 and "is an input file" in r.stderr, r.stderr
    assert digest(my / "rules.yaml") == before
    r = run("test", tmp_path / "t.test.yaml", "--junit", tmp_path / "j.xml")
    assert r.returncode == 0, r.stderr
    assert "<testsuite" in (tmp_path / "j.xml").read_text()
