"""Generated books: determinism, realism, every defect kind present, store and folder give the same book."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from kamrules.bookgen import Trap
from kamrules.generate import defect_accounts, defect_kinds, generate_to_dir, generate_to_store, iter_book
from kamrules.ruleset import parse_ruleset
from kamrules.store import Store

AS_OF = "2026-10-31"


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_book(tmp_path):
    generate_to_dir(tmp_path / "a", 60, seed=3, as_of=AS_OF)
    generate_to_dir(tmp_path / "b", 60, seed=3, as_of=AS_OF)
    generate_to_dir(tmp_path / "c", 60, seed=4, as_of=AS_OF)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_defect_kinds_are_named_after_rules(pm):
    # each rule set's recipes are exactly its rules' names (the rule lists come from the loaded rule sets)
    rules = {}
    for impl in pm.hook.register_defect_recipes.get_hookimpls():
        (path,) = impl.plugin.register_rulesets()
        rs = parse_ruleset(path, builtin=True)
        rules[rs.name] = {r.name for r in rs.rules}
        assert {r.kind for r in impl.function() if not isinstance(r, Trap)} == rules[rs.name], rs.name
    assert set(rules) >= {
        "over_subsidising",
        "neglected_small_clients",
        "missing_escalation_channels",
        "stalled_stages",
    }
    assert set(defect_kinds(pm)) == set().union(*rules.values())
    assert len(defect_kinds(pm)) == len(set(defect_kinds(pm)))


def test_every_defect_in_the_fixture_book(book_store):
    found = defect_accounts(200, seed=1, as_of=AS_OF)
    assert all(found[k] for k in defect_kinds()), [k for k in defect_kinds() if not found[k]]
    accounts = {r["id"]: r for r in book_store.query("SELECT * FROM accounts")}
    for acc in found["no_ka_manager"]:
        assert (
            accounts[acc]["tier"] == "key" and accounts[acc]["owner"] is None and accounts[acc]["owner_email"] is None
        )
    for acc in found["lost_without_reason"]:
        assert accounts[acc]["status"] == "lost" and accounts[acc]["lost_reason"] is None
    for acc in found["uncommitted_concessions"]:
        assert list(book_store.query("SELECT 1 FROM concessions WHERE account_id = ? AND commitment_id IS NULL", [acc]))
    for acc in found["complaint_unresolved"]:
        assert list(
            book_store.query(
                "SELECT 1 FROM complaints WHERE account_id = ? AND closed_on IS NULL AND opened_on < date(?, '-30 days')",
                [acc, AS_OF],
            )
        )
    for acc in found["stage_regression"]:
        stages = [
            r["stage"]
            for r in book_store.query("SELECT stage FROM stage_history WHERE account_id = ? ORDER BY entered_on", [acc])
        ]
        assert stages[-2:] == ["proposal", "presentation"]


def test_healthy_book_when_defects_zero():
    assert all(defect is None for _, defect, _ in iter_book(80, seed=2, as_of=AS_OF, defects=0))


def test_realistic_mix(tmp_path):
    with Store.open(tmp_path / "k.db") as store:
        counts = generate_to_store(store, 600, seed=5, as_of=AS_OF, defects=0)
        tiers = Counter(r["tier"] for r in store.query("SELECT tier FROM accounts"))
        assert (
            0.05 < tiers["key"] / 600 < 0.15 and 0.22 < tiers["mid"] / 600 < 0.38 and 0.5 < tiers["small"] / 600 < 0.7
        )
        statuses = {r["status"] for r in store.query("SELECT status FROM accounts")}
        assert statuses == {"prospect", "active", "lost"}
        names = [r["name"] for r in store.query("SELECT name FROM accounts")]
        assert any(n.endswith("有限公司") for n in names) and any(n.isascii() for n in names)
        assert 60 < sum(counts.values()) / 600 < 140  # ~100 rows per account
        first, last = next(store.query("SELECT min(date) AS a, max(date) AS b FROM orders")).values()
        assert first >= "2024-10-31" and last <= AS_OF and first < "2025-01-01"
        assert store.count("complaints") and store.count("commitments") and store.count("concessions")


def test_folder_and_store_hold_the_same_book(tmp_path):
    generate_to_dir(tmp_path / "book", 40, seed=9, as_of=AS_OF)
    with Store.open(tmp_path / "imported.db") as a, Store.open(tmp_path / "direct.db") as b:
        a.import_paths([tmp_path / "book"])
        generate_to_store(b, 40, seed=9, as_of=AS_OF)
        for table in a.tables:
            q = f'SELECT * FROM "{table}" ORDER BY rowid'
            assert list(a.query(q)) == list(b.query(q)), table


def test_jsonl_output_imports(tmp_path):
    generate_to_dir(tmp_path / "book", 20, seed=1, as_of=AS_OF, fmt="jsonl")
    assert sorted(p.suffix for p in (tmp_path / "book").iterdir()) == [".jsonl"] * 9
    with Store.open(tmp_path / "k.db") as store:
        report = store.import_paths([tmp_path / "book"])
        assert report.tables["accounts"].inserted == 20 and report.rejected == 0


def test_progress_and_prefix_stability(tmp_path):
    seen = []
    generate_to_dir(tmp_path / "b", 30, seed=1, as_of=AS_OF, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (30, 30)
    small = [(a, d) for a, d, _ in iter_book(30, seed=1, as_of=AS_OF)]
    big = [(a, d) for a, d, _ in iter_book(40, seed=1, as_of=AS_OF)][:30]
    assert small == big  # account i does not depend on the size of the book


def test_each_defect_makes_its_rule_fire_and_a_healthy_book_is_quiet(book_store, tmp_path):
    from kamrules.check import run_check

    alerts = run_check(book_store, as_of=AS_OF).alerts
    fired: dict[str, set] = {}
    for a in alerts:
        fired.setdefault(a.rule, set()).add(a.account_id)
    for kind, accounts in defect_accounts(200, seed=1, as_of=AS_OF).items():
        hit = set().union(*(ids for rule, ids in fired.items() if rule == kind or rule.startswith(kind + "_")))
        if kind in ("support_share", "mixed_book", "lost_reason_pattern"):  # portfolio rules: alerts with no account
            assert hit == {None}
        else:
            assert set(accounts) <= hit, (kind, sorted(set(accounts) - hit))
    with Store.open(tmp_path / "healthy.db") as healthy:
        generate_to_store(healthy, 150, seed=2, as_of=AS_OF, defects=0, traps=0)  # traps: test_generator_traps.py
        assert run_check(healthy, as_of=AS_OF).alerts == []
