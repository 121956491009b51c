"""The generated row converter (the import's fast path) equals the per-column converters (its slow path).

The importer converts a row with one generated function (``Plan.convert``, kamrules.validate.compile_row);
on :class:`Bad` it re-runs the row through each column's own converter (``Plan.convs``) to name every
problem. So for every value both must agree: the same stored value, and the same refusals with the
same message. Checked here per column kind on random text and on typed values written many ways.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kamrules.contract import KINDS, Column, Table
from kamrules.validate import BOOLS, SINGLE_LINE, Bad, make_plan

# Every character str.strip() removes, and line breaks: where the fast path's shortcuts could slip.
SPACES = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2003\u200a\u2028\u2029\u202f\u205f\u3000"
CHOICES = ("key", "mid", "small", "是")
IDS = frozenset({"A1", "B-2", "华东1", "007"})
settings.register_profile("converters", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def columns(draw):
    """(table, column name): one column under test, of any kind, optional or required, a key, a reference."""
    kind = draw(st.sampled_from(KINDS))
    role = draw(
        st.sampled_from(
            ["plain", "required", "default", "key", "choices", "optional choices", "reference", "key reference"]
        )
    )
    if kind != "text" and role in ("choices", "optional choices", "reference", "key reference"):
        role = "plain"
    name = draw(st.sampled_from(["note", "name"] if kind == "text" else ["value"]))  # 'name' is single-line
    default = (
        {"text": "n/a", "int": 0, "float": 0.0, "date": "2026-01-01", "bool": 0, "email": "a@b.cn"}[kind]
        if role == "default"
        else None
    )
    col = Column(
        name,
        kind,
        required=role == "required",
        choices=CHOICES if "choices" in role else (),
        references="other.id" if "reference" in role else None,
        default="mid" if role == "optional choices" and draw(st.booleans()) else default,
    )
    key = role in ("key", "key reference")
    cols = (col,) if key else (Column("id", required=True), col)
    return Table("t", cols, primary_key=(name,) if key else ("id",)), name


def padded(core):
    return st.tuples(st.text(SPACES, max_size=2), core, st.text(SPACES, max_size=2)).map("".join)


def _dates(d: dt.date):
    return st.sampled_from(
        [
            d.isoformat(),
            f"{d.year}/{d.month}/{d.day}",
            f"{d.year}.{d.month:02}.{d.day:02}",
            f"{d.year}年{d.month}月{d.day}日",
            f"{d.isoformat()} 10:30",
            f"{d.isoformat()}T10:30:00+08:00",
        ]
    )


TYPED = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.integers(-(10**9), 10**9).map(lambda i: f"{i:,}"),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-1e9, 1e9).map(lambda f: f"{f:,.2f}"),
    st.sampled_from(
        ["1e3", "1.0", "-0", "+7", "1_000", "0x10", "nan", "inf", "-Infinity", "1,23", "12,345.6", "１２３"]
    ),
    st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).flatmap(_dates),
    st.sampled_from(
        [
            "2026-02-30",
            "2026-13-01",
            "2026-1-5",
            "2026-01-5x",
            "20261231",
            "2026-10-31T25:00",
            "2026年13月1日",
            "0000-01-01",
        ]
    ),
    st.sampled_from(sorted(BOOLS) + ["TRUE", "Yes", "N", "maybe", "2"]),
    st.sampled_from(CHOICES + ("KEY", "Mid", "SMALL", "huge", "kEy")),
    st.sampled_from(sorted(IDS) + ["a1", "C3"]),
    st.sampled_from(["li.na@example.com", "王芳@例子.中国", "a@b", "@b.cn", "a b@c.cn", "x@y.cn\n"]),
    st.sampled_from(["", "line\nbreak", "cr\rhere"]),
)
VALUES = st.one_of(padded(TYPED), st.text(max_size=12), st.text(SPACES, max_size=3))


def slow(plan, values):
    """The per-column converters, as the importer's slow path runs them: (converted row, problems)."""
    out, problems = list(values), []
    for pos, conv in plan.convs:
        try:
            out[pos] = conv(values[pos])
        except Bad as e:
            problems.append(str(e))
    return out, problems


def typed(row):
    return [(type(v), v) for v in row]


@settings(settings.get_profile("converters"))
@given(columns(), st.lists(VALUES, min_size=1, max_size=8))
def test_fast_and_slow_converters_agree_per_column_kind(spec, samples):
    table, name = spec
    header = [c.name for c in table.columns]
    plan = make_plan(table, header, id_set=lambda t, c: IDS)
    if not plan.convs:  # plain optional text: stored as read, no converter on either path
        return
    for sample in samples:
        row = ["A1" if h != name else sample for h in header]
        want, problems = slow(plan, row)
        got = list(row)
        try:
            plan.convert(got)
        except Bad as e:
            assert problems, f"fast refused {sample!r} ({e}); slow stored {want!r}"
            assert str(e) == problems[0], sample
            continue
        assert not problems, f"fast stored {got!r} for {sample!r}; slow refused it: {problems}"
        assert typed(got) == typed(want), sample


@settings(settings.get_profile("converters"))
@given(st.lists(VALUES, min_size=6, max_size=6))
def test_a_whole_row_of_every_kind_agrees(row):
    """All kinds in one generated function: the first refusal is the slow path's first problem."""
    table = Table(
        "t",
        (
            Column("id", required=True),
            Column("n", "int"),
            Column("x", "float", required=True),
            Column("d", "date", default="2026-01-01"),
            Column("b", "bool"),
            Column("tier", choices=CHOICES),
        ),
    )
    plan = make_plan(table, [c.name for c in table.columns], id_set=lambda t, c: IDS)
    want, problems = slow(plan, row)
    got = list(row)
    try:
        plan.convert(got)
    except Bad as e:
        assert problems and str(e) == problems[0]
        return
    assert not problems and typed(got) == typed(want)


def test_the_single_line_columns_are_covered():
    assert "name" in SINGLE_LINE and "note" not in SINGLE_LINE


def test_an_id_is_stripped_of_every_unicode_space_on_both_paths():
    """Found by the property above: U+0085, U+2003 and the like around an id were kept by the fast path."""
    table = Table("t", (Column("id", required=True), Column("account_id", references="other.id")))
    plan = make_plan(table, ["id", "account_id"], id_set=lambda t, c: IDS)
    for c in map(chr, range(0x3001)):
        if c.isspace():
            row = [f"{c}A1{c}", f"A1{c}"]
            got = list(row)
            plan.convert(got)
            assert got == slow(plan, row)[0] == ["A1", "A1"], repr(c)
