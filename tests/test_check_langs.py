"""CheckRequest.langs: which other languages' texts the alerts carry; the English alerts never change."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kamrules.check import CheckRequest, run
from kamrules.cli import cli

BOOK_AS_OF = "2026-10-31"  # conftest.book_store's date


def _check(store, pm, langs):
    return run(store, CheckRequest(BOOK_AS_OF, jobs=1, langs=langs), pm).alerts


def test_langs_choose_the_texts_and_leave_the_alerts_alone(book_store, pm):
    every = _check(book_store, pm, None)
    none = _check(book_store, pm, ())
    zh = _check(book_store, pm, ("zh",))
    assert every and [a.to_dict() for a in every] == [a.to_dict() for a in none] == [a.to_dict() for a in zh]
    translated = [a for a in every if a.texts]
    assert translated, "the built-in rules have Chinese texts"
    assert all(set(a.texts) == {"zh"} and a.texts["zh"]["message"] for a in translated)
    assert all(a.texts == {} for a in none)
    assert [a.texts for a in zh] == [a.texts for a in every]  # the same texts when the language is asked for
    assert all(a.message_in("zh") == a.message for a in none)  # no text: English, as for an untranslated rule


@pytest.mark.parametrize(("args", "lang_shown"), [([], None), (["--lang", "zh"], "zh")])
def test_no_history_renders_only_the_output_language(book_store, monkeypatch, args, lang_shown):
    """`check --no-history` asks for the output's language only; with the history every language is kept."""
    seen = []
    import kamrules.check as check

    real = check.plan

    def spy(store, request, pm=None):
        seen.append(request.langs)
        return real(store, request, pm)

    monkeypatch.setattr(check, "plan", spy)
    monkeypatch.delenv("KAMRULES_LANG", raising=False)
    monkeypatch.setenv("KAMRULES_LOAD_PLUGINS", "")
    base = ["check", "--db", str(book_store.path), "--as-of", BOOK_AS_OF, "--format", "json", "--fail-on", "never"]
    r = CliRunner().invoke(cli, [*base, "--no-history", *args])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, [*base, *args])
    assert r.exit_code == 0, r.output
    assert seen == [(lang_shown,) if lang_shown else (), None]
