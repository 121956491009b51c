"""Encodings on import: UTF-8 and plausible GBK are read; Big5, Shift-JIS, cp1252, EUC-KR are refused with the likely encoding named, and read exactly as told with --encoding."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from kamrules.cli import cli
from kamrules.readers import FileProblem, detect_encoding
from kamrules.store import Store

# (encoding, name, owner, region): text that real files in that encoding hold
TEXTS = {
    "big5": ("台北電氣股份有限公司", "王大明", "臺灣"),
    "shift_jis": ("株式会社東京電気", "山田太郎", "関東"),
    "cp1252": ("Müller Bäckerei", "Jürgen Köhler", "Zürich"),  # each accent before a letter: valid GBK bytes
    "euc_kr": ("삼성전자 주식회사", "김민수", "서울"),
    "gbk": ("华东电气集团有限公司", "王磊", "上海"),
    "gb18030": ("深圳市腾讯计算机系统有限公司", "张伟", "广东"),
    "utf-8": ("华为技术有限公司 Café Müller", "李娜", "北京"),
    "utf-8-sig": ("台北電氣 株式会社 Zürich", "山田", "東京"),
}
NAMES = {"big5": "Big5", "shift_jis": "Shift-JIS", "cp1252": "Windows-1252", "euc_kr": "EUC-KR"}


def accounts(tmp_path: Path, encoding: str) -> Path:
    name, owner, region = TEXTS[encoding]
    rows = [f"A{i},{name} {i},key,{owner},{region}" for i in range(1, 6)]
    path = tmp_path / encoding / "accounts.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("id,name,tier,owner,region\n" + "\n".join(rows) + "\n").encode(encoding))
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def stored(db: Path) -> list[tuple]:
    with Store.open(db) as store:
        return [
            (r["name"], r["owner"], r["region"])
            for r in store.query("SELECT name, owner, region FROM accounts ORDER BY id")
        ]


def expected(encoding: str) -> list[tuple]:
    name, owner, region = TEXTS[encoding]
    return [(f"{name} {i}", owner, region) for i in range(1, 6)]


@pytest.mark.parametrize("encoding", ["big5", "shift_jis", "cp1252", "euc_kr"])
def test_other_encodings_refused_then_read_as_told(tmp_path, encoding):
    path = accounts(tmp_path, encoding)
    db = tmp_path / "k.db"
    assert run("--db", db, "init").exit_code == 0
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    r = run("--db", db, "import", path)
    assert r.exit_code == 2 and "Traceback" not in r.output
    [problem] = r.stderr.splitlines()[1:]
    assert problem.startswith(f"{path}:2: unknown text encoding: not UTF-8")
    assert (
        f"it looks like {NAMES[encoding]}" in problem
        and f"pass --encoding ENC with the file's real encoding, e.g. --encoding {encoding}" in problem
    )
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    r = run("--db", db, "import", path, "--encoding", encoding)
    assert r.exit_code == 0, r.output
    assert stored(db) == expected(encoding)


@pytest.mark.parametrize("encoding", ["big5", "shift_jis"])
def test_decoding_as_gbk_without_error_is_no_proof(tmp_path, encoding):
    path = accounts(tmp_path, encoding)
    path.read_bytes().decode("gb18030")  # no error: this is the trap
    with pytest.raises(FileProblem):
        detect_encoding(path)


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8", "utf-8-sig"])
def test_utf8_and_chinese_gbk_read_without_encoding(tmp_path, encoding):
    path = accounts(tmp_path, encoding)
    db = tmp_path / "k.db"
    r = run("--db", db, "import", path)
    assert r.exit_code == 0, r.output
    assert stored(db) == expected(encoding)


def test_encoding_given_is_decoded_exactly(tmp_path):
    # cp1252 text read as latin-1 because the user says so: the bytes' latin-1 meaning, no guessing
    path = accounts(tmp_path, "cp1252")
    db = tmp_path / "k.db"
    assert run("--db", db, "import", path, "--encoding", "latin-1").exit_code == 0
    assert stored(db) == expected("cp1252")
    r = run("--db", db, "import", path, "--encoding", "ascii")  # not ASCII: refused, not guessed
    assert r.exit_code == 2 and f"{path}:2: cannot be decoded as ascii" in r.stderr


def test_chinese_gbk_with_a_few_rare_name_characters(tmp_path):
    path = tmp_path / "accounts.csv"
    rows = [f"A{i},北京恒通物流有限公司{i},mid,赵强,华北" for i in range(20)] + [
        "B1,上海佳源食品股份有限公司,small,王堃,华东"
    ]
    path.write_bytes(("id,name,tier,owner,region\n" + "\n".join(rows) + "\n").encode("gbk"))
    assert detect_encoding(path) == "gb18030"
