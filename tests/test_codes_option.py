"""--select and --ignore take repeated codes or comma-separated lists (flake8's way), the same for every command."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kamrules.cli import cli


def codes(*args: str) -> set[str]:
    r = CliRunner().invoke(cli, ["rules", "--format", "json", *args], env={"KAMRULES_LOAD_PLUGINS": ""})
    assert r.exit_code == 0, r.output
    return {rule["code"] for rs in json.loads(r.stdout) for rule in rs["rules"]}


def test_comma_separated_codes_equal_repeated_options():
    assert codes("--select", "KAM1,KAM203") == codes("--select", "KAM1", "--select", "KAM203")
    assert codes("--select", "KAM1,KAM203") == {c for c in codes() if c.startswith("KAM1") or c == "KAM203"}
    assert codes("--ignore", "KAM1, KAM2") == codes("--ignore", "KAM1", "--ignore", "KAM2")
    assert not codes("--ignore", "KAM1,KAM2") & {"KAM101", "KAM201"}


def test_a_code_in_a_list_that_matches_nothing_is_still_refused():
    r = CliRunner().invoke(cli, ["rules", "--select", "KAM1,XYZ9"], env={"KAMRULES_LOAD_PLUGINS": ""})
    assert r.exit_code == 2 and "XYZ9" in r.output
