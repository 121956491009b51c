"""Shared fixtures: an empty store and a small generated book, both real SQLite files in tmp_path."""

from __future__ import annotations

import pytest

from kamrules.plugins import make_plugin_manager
from kamrules.store import Store

BOOK_ACCOUNTS = 200
BOOK_SEED = 1
BOOK_AS_OF = "2026-10-31"


@pytest.fixture
def pm():
    """A plugin manager with the built-in plugins only: tests don't depend on what else is installed."""
    return make_plugin_manager(load_entry_points=False)


@pytest.fixture(params=["serial", "workers"])
def import_mode(request, monkeypatch):
    """Every import of the test in one process ("serial"), then with the forked worker ("workers").

    Set through $KAMRULES_IMPORT_WORKERS (docs/data-contract.md), so library calls and the CLI alike
    take that path; the import test modules use it for all their tests.
    """
    monkeypatch.setenv("KAMRULES_IMPORT_WORKERS", {"serial": "0", "workers": "1"}[request.param])
    return request.param


@pytest.fixture
def store(tmp_path, pm):
    """An initialised, empty store in ``tmp_path / 'kamrules.db'`` (built-in plugins only)."""
    s = Store.open(tmp_path / "kamrules.db", pm=pm)
    s.init()
    yield s
    s.close()


@pytest.fixture(scope="session")
def _book_template(tmp_path_factory):
    from kamrules.generate import generate_to_store

    path = tmp_path_factory.mktemp("book") / "book.db"
    with Store.open(path) as s:
        generate_to_store(s, BOOK_ACCOUNTS, seed=BOOK_SEED, as_of=BOOK_AS_OF)
    return path


@pytest.fixture
def book_store(tmp_path, _book_template):
    """A store holding a generated book: 200 accounts, seed 1, as of 2026-10-31 (a fresh copy per test).

    Every defect kind of ``kamrules.generate.defect_kinds()`` is carried by at least
    one account; ``kamrules.generate.defect_accounts(200, 1, "2026-10-31")`` says which.
    """
    import shutil

    path = tmp_path / "book.db"
    shutil.copyfile(_book_template, path)
    s = Store.open(path)
    yield s
    s.close()


@pytest.fixture
def server():
    """A real SMTP server (aiosmtpd) on 127.0.0.1, an ephemeral port; see tests/smtp_server.py."""
    from smtp_server import SmtpServer

    srv = SmtpServer()
    yield srv
    srv.stop()


@pytest.fixture
def book(tmp_path):
    """A tiny hand-built book in a real store (tests/rulebook.py): add rows, then check."""
    from rulebook import Book

    return Book(tmp_path / "t.db")
