"""Import with a mapping vs the same import of canonical CSVs (target: within 1.3x at 10k accounts).

A book made by `kamrules generate` is turned into a Chinese CRM export (GBK, Chinese headers and
values, dates 2026/3/5 and 2026年3月5日, amounts ￥90,438.25, booleans 是/否, an extra column 录入人)
with the mapping file that reads it back; both are imported into fresh stores, alternating, 3 times
(medians of wall and CPU seconds; --utf8 adds the same export saved as UTF-8, to tell the mapping's
cost from GBK's).
tests/test_import_mapping.py uses :func:`to_crm_export` on a small book.

Run:  python benchmarks/import_mapping.py [--accounts 10000] [--rounds 3] [--utf8] [--serial] [--work DIR]
      (prints JSON; --src DIR runs another checkout's kamrules, e.g. /work/main for a before/after)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from kamrules.contract import CORE_TABLES
from kamrules.vocab import ENUMS, LABELS

# contract column -> the export's header, per table (headers a Chinese CRM writes)
HEADERS = {
    "accounts": {
        "id": "客户编号", "name": "客户名称", "tier": "客户级别", "owner": "负责人", "owner_email": "负责人邮箱",
        "buyer_type": "客户性质", "purchasing": "采购方式", "segment": "行业", "region": "区域", "status": "客户状态",
        "stage": "销售阶段", "stage_since": "阶段开始日期", "relationship_stage": "关系阶段", "lost_reason": "流失原因",
        "created_on": "创建日期",
    },
    "stage_history": {"account_id": "客户编号", "stage": "阶段", "entered_on": "进入日期"},
    "contacts": {
        "id": "联系人编号", "account_id": "客户编号", "name": "联系人", "role": "角色", "email": "邮箱",
        "phone": "电话", "active": "在职",
    },
    "channels": {"account_id": "客户编号", "kind": "渠道类型", "contact": "对接人", "client_informed": "客户已知晓", "since": "建立日期"},
    "activities": {
        "id": "活动编号", "account_id": "客户编号", "date": "活动日期", "kind": "活动类型", "level": "层级",
        "contact_id": "联系人编号", "by": "拜访人", "duration_minutes": "时长(分钟)", "attitude": "客户态度",
        "cost": "费用", "notes": "备注",
    },
    "orders": {"id": "订单编号", "account_id": "客户编号", "date": "下单日期", "amount": "订单金额", "margin": "毛利"},
    "concessions": {
        "id": "让利编号", "account_id": "客户编号", "date": "日期", "kind": "让利类型", "amount": "让利金额",
        "commitment_id": "协议编号",
    },
    "commitments": {
        "id": "协议编号", "account_id": "客户编号", "start": "开始日期", "end": "结束日期",
        "target_amount": "目标金额", "signed": "已签", "document": "协议文件",
    },
    "complaints": {"id": "投诉编号", "account_id": "客户编号", "opened_on": "投诉日期", "closed_on": "关闭日期", "severity": "严重程度", "escalated": "已升级"},
}  # fmt: skip
FILES = {
    "accounts": "客户", "stage_history": "阶段记录", "contacts": "联系人", "channels": "沟通渠道", "activities": "跟进记录",
    "orders": "订单", "concessions": "让利", "commitments": "协议", "complaints": "投诉",
}  # fmt: skip
KIND_OF = {("contacts", "role"): "contact_role", ("channels", "kind"): "channel_kind", ("activities", "kind"): "activity_kind",
           ("activities", "level"): "activity_level", ("concessions", "kind"): "concession_kind", ("complaints", "severity"): "complaint_severity"}  # fmt: skip
TIER_WORDS = {"key": "重点客户", "mid": "中型客户", "small": "小客户"}  # as CRMs say it (vocab's label is 大客户)


def value_words(table: str, column: str) -> dict[str, str]:
    """canonical value -> the export's word, for an enumeration column."""
    if column == "tier":
        return TIER_WORDS
    kind = KIND_OF.get((table, column), column)
    return {v: LABELS[kind][v]["zh"] for v in ENUMS[kind]} if kind in ENUMS else {}


def _amount(s: str) -> str:
    whole, dot, frac = s.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"￥{sign}{int(whole.lstrip('-')):,}{dot}{frac}"


def _date(s: str, odd: bool) -> str:
    y, m, d = s.split("-")
    return f"{y}年{int(m)}月{int(d)}日" if odd else f"{y}/{int(m)}/{int(d)}"


def to_crm_export(src: Path, out: Path, encoding: str = "gbk") -> Path:
    """The contract CSVs in ``src`` as a Chinese CRM export in ``out``; returns the mapping file's path."""
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "dates": ["%Y/%m/%d", "%Y年%m月%d日"],
        "amounts": {"currency": ["￥"]},
        "booleans": {"是": True, "否": False},
    }
    spec: dict = {}
    for t in CORE_TABLES:
        path = src / f"{t.name}.csv"
        if not path.exists():
            continue
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = csv.reader(f)
            header = next(rows)
            cols = [t.column(h) for h in header]
            words = [value_words(t.name, c.name) if c is not None and c.choices else None for c in cols]
            with open(out / f"{FILES[t.name]}.csv", "w", encoding=encoding, newline="") as w:
                writer = csv.writer(w, lineterminator="\r\n")
                writer.writerow([HEADERS[t.name].get(h, h) for h in header] + ["录入人"])
                for n, row in enumerate(rows):
                    new = []
                    for v, c, wd in zip(row, cols, words, strict=True):
                        if v and c is not None:
                            if wd:
                                v = wd[v]
                            elif c.kind == "date":
                                v = _date(v, n % 2 == 1)
                            elif c.kind == "float":
                                v = _amount(v)
                            elif c.kind == "bool":
                                v = "是" if v.lower() in ("true", "1", "yes") else "否"
                        new.append(v)
                    writer.writerow(new + ["系统管理员"])
        spec[t.name] = {
            "files": [f"{FILES[t.name]}*.csv"],
            "columns": {HEADERS[t.name][h]: h for h in header if h in HEADERS[t.name]},
            "values": {c.name: {w: v for v, w in value_words(t.name, c.name).items()} for c in t.columns if c.choices},
            "drop": ["录入人"],
        }
    tables["tables"] = spec
    mapping = out.parent / f"{out.name}-mapping.yaml"
    mapping.write_text(yaml.safe_dump(tables, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return mapping


def _timed(args: list[str], src: Path | None) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the import process and its worker) of one command."""
    env = dict(os.environ, PYTHONPATH=str(src)) if src is not None else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kamrules", *args], check=True, capture_output=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=10000)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--utf8", action="store_true", help="also the same export saved as UTF-8 (mapping vs encoding cost)"
    )
    ap.add_argument("--serial", action="store_true", help="without the import worker (KAMRULES_IMPORT_WORKERS=0)")
    ap.add_argument("--src", type=Path, default=None, help="import kamrules from this checkout (e.g. main's)")
    a = ap.parse_args()
    if a.serial:
        os.environ["KAMRULES_IMPORT_WORKERS"] = "0"
    work = a.work or Path(tempfile.mkdtemp(prefix="kamrules-mapping-"))
    book = work / "book"
    if not book.exists():
        subprocess.run(
            [sys.executable, "-m", "kamrules", "generate", "--accounts", str(a.accounts), "--out", str(book),
             "--seed", "1", "--as-of", "2026-10-31"], check=True, capture_output=True,
        )  # fmt: skip
    cases: dict[str, list[str]] = {"canonical": [str(book)]}
    for kind, encoding in [("mapped", "gbk")] + ([("mapped_utf8", "utf-8")] if a.utf8 else []):
        export = work / f"export-{encoding}"
        mapping = work / f"export-{encoding}-mapping.yaml"
        if not mapping.exists():
            mapping = to_crm_export(book, export, encoding)
        cases[kind] = [str(export), "--mapping", str(mapping)]
        if (
            encoding == "gbk" and a.src is None
        ):  # the same mapping saying the export's encoding (as --suggest-mapping writes it)
            said = work / "export-gbk-mapping-encoding.yaml"
            said.write_text("encoding: gbk\n" + mapping.read_text(encoding="utf-8"), encoding="utf-8")
            cases["mapped_encoding"] = [str(export), "--mapping", str(said)]
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for i in range(a.rounds):  # alternating: a change in the machine's load hits every case alike
        for kind, what in cases.items():
            db = work / f"{kind}-{i}.db"
            db.unlink(missing_ok=True)
            w, c = _timed(["--db", str(db), "import", *what], a.src)
            wall[kind].append(round(w, 2))
            cpu[kind].append(round(c, 2))
            db.unlink(missing_ok=True)
    median = {k: {"wall": statistics.median(wall[k]), "cpu": statistics.median(cpu[k])} for k in cases}
    base = median["canonical"]
    ratio = {k: {m: round(v[m] / base[m], 2) for m in v} for k, v in median.items() if k != "canonical"}
    out = {"accounts": a.accounts, "serial": a.serial, "wall": wall, "cpu": cpu, "median": median, "ratio": ratio}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
