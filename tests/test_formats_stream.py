"""Output formats stream alert by alert, with the same text as building the whole output at once."""

import csv
import io
import json
import types

from hypothesis import given, settings
from hypothesis import strategies as st

from kamrules.check import run_check
from kamrules_plugins.formats import pretty, render_csv, render_json, render_jsonl


def _alerts(book_store):
    result = run_check(book_store, as_of="2026-10-31")
    assert len(result.alerts) > 50
    return result


def test_json_stream_equals_one_shot_dump(book_store):
    result = _alerts(book_store)
    chunks = render_json(result.alerts, result.summary)
    assert isinstance(chunks, types.GeneratorType)
    text = "".join(chunks)
    assert text == json.dumps([a.to_dict() for a in result.alerts], ensure_ascii=False, indent=2) + "\n"
    assert "".join(render_json([], result.summary)) == "[]\n"
    assert json.loads(text)[0]["fingerprint"] == result.alerts[0].fingerprint


def test_jsonl_and_csv_stream_every_alert(book_store):
    result = _alerts(book_store)
    lines = "".join(render_jsonl(result.alerts, result.summary)).splitlines()
    assert [json.loads(line)["fingerprint"] for line in lines] == [a.fingerprint for a in result.alerts]
    rows = list(csv.DictReader(io.StringIO("".join(render_csv(result.alerts, result.summary)))))
    assert [r["fingerprint"] for r in rows] == [a.fingerprint for a in result.alerts]
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in r["account_name"]) for r in rows)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text())
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(), inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), _values, max_size=6), st.sampled_from(["", "  "]))
def test_pretty_is_json_dumps_indent_2(obj, indent):
    assert pretty(obj, indent) == json.dumps(obj, ensure_ascii=False, indent=2).replace("\n", "\n" + indent)
