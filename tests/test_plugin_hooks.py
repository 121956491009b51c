"""Every plugin hook, exercised through a real plugin; entry points, --plugins-dir, the allowlist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kamrules.errors import InputError, PluginError
from kamrules.plugins import get_plugins, make_plugin_manager
from kamrules.store import Store

AS_OF = "2026-10-31"


def write_plugin(folder: Path, name: str, code: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


def kamrules(*args, cwd=None, env=None, check=False):
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "kamrules", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(textwrap.dedent(text).lstrip().encode(encoding))
    return path


VISITS_PLUGIN = """
    from kamrules import hookimpl
    from kamrules.contract import C, Table

    @hookimpl
    def register_tables():
        return [Table("site_visits", (
            C("id", required=True),
            C("account_id", required=True, references="accounts.id"),
            C("date", "date", required=True),
            C("purpose", choices=("audit", "training", "repair")),
            C("hours", "float"),
        ))]
"""

ACCOUNTS_CSV = """
    id,name,tier,owner
    A1,华东电气集团,key,王磊
    A2,小五金商行,small,李娜
"""


# -- register_tables ------------------------------------------------------------
def test_register_tables_plugin_table_is_created_validated_and_imported(tmp_path):
    write_plugin(tmp_path / "p", "visits", VISITS_PLUGIN)
    pm = make_plugin_manager(plugins_dirs=[tmp_path / "p"], load_entry_points=False)
    with Store.open(tmp_path / "k.db", pm=pm) as store:
        assert "site_visits" in store.tables
        assert store.table_exists("site_visits")
        data = tmp_path / "data"
        write_csv(data / "accounts.csv", ACCOUNTS_CSV)
        write_csv(
            data / "site_visits.csv",
            """
            id,account_id,date,purpose,hours
            V1,A1,2026-10-01,audit,3.5
            V2,A9,2026-10-02,party,x
            V3,A2,,repair,
        """,
        )
        with pytest.raises(InputError) as e:
            store.import_paths([data])
        text = e.value.render()
        assert "site_visits.csv:3: account_id: 'A9' is not a known accounts.id" in text
        assert "site_visits.csv:3: purpose: 'party' is not allowed (expected one of: audit, training, repair)" in text
        assert "site_visits.csv:3: hours:" in text
        assert "site_visits.csv:4: date: missing value" in text
        assert store.count("site_visits") == 0  # refused as a whole
        write_csv(
            data / "site_visits.csv",
            """
            id,account_id,date,purpose,hours
            V1,A1,2026-10-01,audit,3.5
            V3,A2,2026-10-03,repair,
        """,
        )
        report = store.import_paths([data])
        assert report.tables["site_visits"].inserted == 2
        assert list(store.query("SELECT id, hours FROM site_visits ORDER BY id")) == [
            {"id": "V1", "hours": 3.5},
            {"id": "V3", "hours": None},
        ]


def test_register_tables_name_declared_twice_is_a_plugin_error(tmp_path):
    write_plugin(
        tmp_path / "p",
        "dup",
        """
        from kamrules import hookimpl
        from kamrules.contract import C, Table

        @hookimpl
        def register_tables():
            return [Table("orders", (C("id", required=True),))]
    """,
    )
    pm = make_plugin_manager(plugins_dirs=[tmp_path / "p"], load_entry_points=False)
    with pytest.raises(PluginError, match="'orders' is declared by more than one plugin"):
        Store.open(tmp_path / "k.db", pm=pm)


def test_plugin_table_imported_through_the_cli(tmp_path):
    plugins = tmp_path / "p"
    write_plugin(plugins, "visits", VISITS_PLUGIN)
    write_csv(tmp_path / "data" / "accounts.csv", ACCOUNTS_CSV)
    write_csv(tmp_path / "data" / "site_visits.csv", "id,account_id,date,purpose\nV1,A1,2026-10-01,training\n")
    db = tmp_path / "k.db"
    kamrules("--plugins-dir", plugins, "init", "--db", db, check=True)
    kamrules("--plugins-dir", plugins, "import", tmp_path / "data", "--db", db, check=True)
    with Store.open(db, pm=make_plugin_manager(plugins_dirs=[plugins], load_entry_points=False)) as store:
        assert store.count("site_visits") == 1


# -- rename_columns ---------------------------------------------------------------
def test_rename_columns_maps_a_crm_export_onto_the_contract(tmp_path):
    write_plugin(
        tmp_path / "p",
        "crm",
        """
        from kamrules import hookimpl

        CALLS = []

        @hookimpl
        def rename_columns(table, columns, path):
            CALLS.append((table, list(columns), path))
            if table == "accounts" and "客户编号" in columns:
                return {"客户编号": "id", "客户名称": "name", "客户等级": "tier"}
    """,
    )
    write_plugin(
        tmp_path / "p",
        "crm_owner",
        """
        from kamrules import hookimpl

        @hookimpl
        def rename_columns(table, columns, path):
            return {"客户经理": "owner"} if "客户经理" in columns else None
    """,
    )
    pm = make_plugin_manager(plugins_dirs=[tmp_path / "p"], load_entry_points=False)
    crm = sys.modules["kamrules_dir_plugin_crm"]
    data = tmp_path / "data"
    # a GBK export, as Chinese Excel writes it
    write_csv(
        data / "accounts.csv",
        """
        客户编号,客户名称,客户等级,客户经理,备注
        A1,华东电气集团,key,王磊,老客户
        A2,小五金商行,medium,李娜,
    """,
        encoding="gbk",
    )
    with Store.open(tmp_path / "k.db", pm=pm) as store:
        with pytest.raises(InputError) as e:
            store.import_paths([data])
        # problems name the contract column, not the export's
        assert "accounts.csv:3: tier: 'medium' is not allowed" in e.value.render()
        assert crm.CALLS[-1] == (
            "accounts",
            ["客户编号", "客户名称", "客户等级", "客户经理", "备注"],
            str(data / "accounts.csv"),
        )
        write_csv(
            data / "accounts.csv",
            "客户编号,客户名称,客户等级,客户经理,备注\nA1,华东电气集团,key,王磊,老客户\n",
            encoding="gbk",
        )
        store.import_paths([data])
        assert list(store.query("SELECT id, name, tier, owner, 备注 FROM accounts")) == [
            {"id": "A1", "name": "华东电气集团", "tier": "key", "owner": "王磊", "备注": "老客户"}
        ]


# -- register_commands --------------------------------------------------------------
def test_register_commands_adds_a_command_with_help(tmp_path):
    write_plugin(
        tmp_path / "p",
        "hello",
        """
        import click
        from kamrules import hookimpl
        from kamrules.cliutils import db_option, handle_errors, pass_env

        @hookimpl
        def register_commands(cli):
            @cli.command(name="hello")
            @click.argument("who", default="世界")
            @db_option
            @pass_env
            @handle_errors
            def hello(env, who):
                \"\"\"Say hello.\"\"\"
                click.echo(f"你好, {who} ({env.db})")
    """,
    )
    out = kamrules("--plugins-dir", tmp_path / "p", "hello", "王磊", "--db", "x.db", check=True).stdout
    assert out == "你好, 王磊 (x.db)\n"
    assert "hello" in kamrules("--plugins-dir", tmp_path / "p", "--help", check=True).stdout
    assert "hello" not in kamrules("--help", check=True).stdout


# -- loading: entry points, plugins folders, allowlist, check_pending, `kamrules plugins` ---
def fake_distribution(site: Path, dist: str, version: str, ep_name: str, module: str, code: str) -> None:
    """An installed distribution as pip leaves it: a module and a .dist-info with entry_points.txt."""
    write_plugin(site, module, code)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[kamrules]\n{ep_name} = {module}\n", encoding="utf-8")


HELLO_FORMAT = """
    from kamrules import hookimpl
    from kamrules.formats import OutputFormat

    @hookimpl
    def register_output_formats():
        return [OutputFormat(name="{name}", render=lambda alerts, summary: "n=%d\\n" % len(alerts))]
"""


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    fake_distribution(
        site,
        "kamrules-fakeplug",
        "0.3.1",
        "fakeplug",
        "fakeplug_hooks_ep",
        HELLO_FORMAT.replace("{name}", "fake-count"),
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("KAMRULES_LOAD_PLUGINS", raising=False)
    return site


def test_entry_point_plugin_is_loaded_with_its_version(fake_site):
    pm = make_plugin_manager()
    info = {p["name"]: p for p in get_plugins(pm)}
    assert info["fakeplug"] == {
        "name": "fakeplug",
        "version": "0.3.1",
        "builtin": False,
        "hooks": ["register_output_formats"],
    }
    names = [f.name for batch in pm.hook.register_output_formats() for f in batch]
    assert "fake-count" in names


# a name that is not installed ("other") is a usage error: tests/test_plugin_isolation.py
@pytest.mark.parametrize(
    "allow, loaded", [("", False), ("fakeplug", True), ("kamrules-fakeplug", True), (" fakeplug, ", True)]
)
def test_kamrules_load_plugins_allowlist(fake_site, monkeypatch, allow, loaded):
    monkeypatch.setenv("KAMRULES_LOAD_PLUGINS", allow)
    names = {p["name"] for p in get_plugins(make_plugin_manager())}
    assert ("fakeplug" in names) is loaded
    assert "kamrules_plugins.contract" in names  # built-ins always load


def test_kamrules_plugins_json_lists_entry_point_and_folder_plugins(tmp_path):
    site = tmp_path / "site"
    fake_distribution(
        site,
        "kamrules-fakeplug",
        "0.3.1",
        "fakeplug",
        "fakeplug_hooks_cli",
        HELLO_FORMAT.replace("{name}", "fake-count"),
    )
    write_plugin(tmp_path / "p", "visits", VISITS_PLUGIN)
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("KAMRULES_LOAD_PLUGINS", None)
    proc = kamrules(
        "--plugins-dir",
        tmp_path / "p",
        "plugins",
        "--format",
        "json",
        env=dict(env, KAMRULES_LOAD_PLUGINS="fakeplug"),
        check=True,
    )
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["fakeplug"]["version"] == "0.3.1" and rows["fakeplug"]["hooks"] == ["register_output_formats"]
    folder = [r for name, r in rows.items() if name.endswith("visits.py")]
    assert folder and folder[0]["hooks"] == ["register_tables"] and folder[0]["builtin"] is False
    assert (
        rows["kamrules_plugins.devtools"]["builtin"] is True
        and "register_commands" in rows["kamrules_plugins.devtools"]["hooks"]
    )
    # the allowlist applies to the CLI too
    proc = kamrules("plugins", "--format", "json", env=dict(env, KAMRULES_LOAD_PLUGINS=""), check=True)
    assert "fakeplug" not in {r["name"] for r in json.loads(proc.stdout)}


def test_plugins_dir_from_environment(tmp_path, monkeypatch):
    write_plugin(tmp_path / "p", "visits", VISITS_PLUGIN)
    monkeypatch.setenv("KAMRULES_PLUGINS_DIR", str(tmp_path / "p"))
    with Store.open(tmp_path / "k.db", pm=make_plugin_manager(load_entry_points=False)) as store:
        assert "site_visits" in store.tables


def test_plugins_dir_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(PluginError, match="plugins folder does not exist"):
        make_plugin_manager(plugins_dirs=[tmp_path / "nope"], load_entry_points=False)


def test_check_pending_rejects_a_misspelt_hook(tmp_path):
    write_plugin(
        tmp_path / "p",
        "typo",
        """
        from kamrules import hookimpl

        @hookimpl
        def register_table():
            return []
    """,
    )
    with pytest.raises(PluginError, match="unknown hook 'register_table'"):
        make_plugin_manager(plugins_dirs=[tmp_path / "p"], load_entry_points=False)
    proc = kamrules("--plugins-dir", tmp_path / "p", "plugins")
    assert proc.returncode == 2
    assert "register_table" in proc.stderr and "Traceback" not in proc.stderr


def test_hookimpl_with_an_unknown_argument_is_a_clean_error(tmp_path):
    write_plugin(
        tmp_path / "p",
        "badargs",
        """
        from kamrules import hookimpl

        @hookimpl
        def rename_columns(table, cols):
            return None
    """,
    )
    with pytest.raises(PluginError, match="cols"):
        make_plugin_manager(plugins_dirs=[tmp_path / "p"], load_entry_points=False)
    proc = kamrules("--plugins-dir", tmp_path / "p", "plugins")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "cols" in proc.stderr


def test_plugin_that_fails_to_import_is_a_clean_error(tmp_path):
    write_plugin(tmp_path / "p", "broken", "import no_such_module_kamrules\n")
    proc = kamrules("--plugins-dir", tmp_path / "p", "plugins")
    assert proc.returncode == 2
    assert "broken.py: plugin failed to load: ModuleNotFoundError" in proc.stderr and "Traceback" not in proc.stderr


# -- register_facts, register_rulesets, register_output_formats, register_notifiers -------------
RULES_PLUGIN = '''
    from pathlib import Path

    from kamrules import hookimpl
    from kamrules.contract import C, Table
    from kamrules.facts import FactProvider
    from kamrules.formats import OutputFormat

    @hookimpl
    def register_tables():
        return [Table("site_visits", (
            C("id", required=True),
            C("account_id", required=True, references="accounts.id"),
            C("date", "date", required=True),
        ))]

    @hookimpl
    def register_facts():
        return [FactProvider(
            name="site_visits",
            requires=("site_visits",),
            facts=("site_visits_90d",),
            sql="""SELECT a.id AS account_id, COUNT(v.id) AS site_visits_90d
                   FROM accounts a LEFT JOIN site_visits v ON v.account_id = a.id
                        AND v.date <= :as_of AND v.date > date(:as_of, '-90 days')
                   GROUP BY a.id""",
        )]

    @hookimpl
    def register_rulesets():
        return [Path(__file__).parent / "site_visits.yaml"]

    @hookimpl
    def register_output_formats():
        return [OutputFormat(name="codes", description="one code and account a line",
                             render=lambda alerts, summary: "".join(f"{a.code} {a.account_id}\\n" for a in alerts))]
'''

SITE_RULES = """
ruleset: site_visits
description: Key accounts need site visits.
rules:
  - code: VIS101
    name: no_site_visit
    description: A key account had fewer site visits than the minimum in 90 days.
    severity: warning
    when:
      - "tier == key"
      - "site_visits_90d < $min"
    thresholds:
      min: {warning: 2, critical: 1}
    message: "{site_visits_90d} site visits in the 90 days to {as_of}; minimum {min}"
    action: "Plan a site visit."
"""

SITE_DATA = {
    "accounts.csv": "id,name,tier,owner\nA1,华东电气集团,key,王磊\nA2,南方物流,key,李娜\nA3,小五金商行,small,李娜\n",
    "site_visits.csv": "id,account_id,date\nV1,A2,2026-10-01\nV2,A3,2026-10-01\nV3,A1,2026-01-01\n",
}


@pytest.fixture
def site_plugin(tmp_path):
    folder = tmp_path / "p"
    write_plugin(folder, "site", RULES_PLUGIN)
    (folder / "site_visits.yaml").write_text(SITE_RULES.lstrip(), encoding="utf-8")
    data = tmp_path / "data"
    for name, text in SITE_DATA.items():
        write_csv(data / name, text)
    return folder, data


def test_register_facts_and_rulesets_fire_alerts_with_evidence(tmp_path, site_plugin):
    from kamrules.check import run_check

    folder, data = site_plugin
    pm = make_plugin_manager(plugins_dirs=[folder], load_entry_points=False)
    with Store.open(tmp_path / "k.db", pm=pm) as store:
        (tmp_path / "only_accounts").mkdir()
        (tmp_path / "only_accounts" / "accounts.csv").write_text(SITE_DATA["accounts.csv"], encoding="utf-8")
        store.import_paths([tmp_path / "only_accounts"])
        empty = run_check(store, AS_OF, select=("VIS",), pm=pm)
        assert empty.alerts == [] and "VIS101" in {c for c, _ in empty.summary.skipped}  # no data: skipped, not quiet
        store.import_paths([data])
        result = run_check(store, AS_OF, select=("VIS",), pm=pm)
    got = {(a.code, a.account_id, a.severity) for a in result.alerts}
    assert got == {("VIS101", "A1", "critical"), ("VIS101", "A2", "warning")}
    a1 = next(a for a in result.alerts if a.account_id == "A1")
    assert a1.ruleset == "site_visits" and a1.rule == "no_site_visit"
    assert a1.message == "0 site visits in the 90 days to 2026-10-31; minimum 1"
    assert a1.evidence["site_visits_90d"] == 0 and a1.evidence["min"] == 1


def test_user_rulesets_folder_replaces_a_plugins_rule_set_by_name(tmp_path, site_plugin):
    from kamrules.check import run_check

    folder, data = site_plugin
    mine = tmp_path / "my_rules"
    mine.mkdir()
    (mine / "site_visits.yaml").write_text(
        SITE_RULES.replace("{warning: 2, critical: 1}", "{warning: 1}").lstrip(), encoding="utf-8"
    )
    pm = make_plugin_manager(plugins_dirs=[folder], load_entry_points=False)
    with Store.open(tmp_path / "k.db", pm=pm) as store:
        store.import_paths([data])
        result = run_check(store, AS_OF, rulesets_dirs=(str(mine),), select=("VIS",), pm=pm)
    assert {(a.account_id, a.severity) for a in result.alerts} == {("A1", "warning")}


def test_a_fact_name_produced_twice_is_a_plugin_error(tmp_path):
    from kamrules.check import run_check

    write_plugin(
        tmp_path / "p",
        "clash",
        """
        from kamrules import hookimpl
        from kamrules.facts import FactProvider

        @hookimpl
        def register_facts():
            return [FactProvider(name="my_revenue", facts=("revenue_12m",),
                                 sql="SELECT id AS account_id, 1 AS revenue_12m FROM accounts")]
    """,
    )
    pm = make_plugin_manager(plugins_dirs=[tmp_path / "p"], load_entry_points=False)
    with Store.open(tmp_path / "k.db", pm=pm) as store:
        with pytest.raises(PluginError, match="revenue_12m"):
            run_check(store, AS_OF, pm=pm)


def test_register_output_formats_used_by_check_format(tmp_path, site_plugin):
    folder, data = site_plugin
    db = tmp_path / "k.db"
    kamrules("--plugins-dir", folder, "init", "--db", db, check=True)
    kamrules("--plugins-dir", folder, "import", data, "--db", db, check=True)
    proc = kamrules(
        "--plugins-dir",
        folder,
        "check",
        "--db",
        db,
        "--as-of",
        AS_OF,
        "--select",
        "VIS",
        "--format",
        "codes",
        "--fail-on",
        "never",
        "--no-history",
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == ["VIS101 A1", "VIS101 A2"]
    assert "codes" in kamrules("--plugins-dir", folder, "check", "--help").stdout


def test_register_notifiers_delivers_through_the_outbox(tmp_path, site_plugin):
    folder, data = site_plugin
    log = tmp_path / "alerts.log"
    write_plugin(
        folder,
        "filenotify",
        f"""
        from dataclasses import dataclass

        from kamrules import hookimpl
        from kamrules.lifecycle.notifiers import Rendered

        @dataclass(frozen=True)
        class FileNotifier:
            name: str = "file"
            path: str = {str(log)!r}

            def route(self, items, settings):
                return ({{self.path: list(items)}} if items else {{}}), []  # no items: no message

            def render(self, recipient, items, key, as_of, settings):
                lines = [f"{{key}} {{as_of}} {{i.alert.code}} {{i.alert.account_id}} {{i.reason}}" for i in items]
                return Rendered(subject=f"{{len(items)}} alerts", payload=("\\n".join(lines) + "\\n").encode("utf-8"))

            def send(self, recipient, payload, settings):
                with open(recipient, "ab") as f:
                    f.write(payload)

        @hookimpl
        def register_notifiers():
            return [FileNotifier()]
    """,
    )
    db = tmp_path / "k.db"
    kamrules("--plugins-dir", folder, "init", "--db", db, check=True)
    kamrules("--plugins-dir", folder, "import", data, "--db", db, check=True)
    args = (
        "--plugins-dir",
        folder,
        "check",
        "--db",
        db,
        "--as-of",
        AS_OF,
        "--select",
        "VIS",
        "--notify",
        "file",
        "--fail-on",
        "never",
        "--format",
        "json",
    )
    proc = kamrules(*args)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(log.read_text(encoding="utf-8").splitlines())
    assert [line.split(" ", 1)[1] for line in lines] == ["2026-10-31 VIS101 A1 new", "2026-10-31 VIS101 A2 new"]
    assert len({line.split(" ")[0] for line in lines}) == 1  # one message, one idempotency key
    kamrules(*args, check=True)  # nothing new: nothing sent again
    assert len(log.read_text(encoding="utf-8").splitlines()) == 2
