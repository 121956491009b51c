"""Telling GBK from other legacy encodings: which encodings read a sample of non-ASCII text plausibly."""

from __future__ import annotations

import re
from collections import Counter

# -- telling GBK from other legacy encodings ---------------------------------
# Almost any byte string decodes as GB18030 without error (Big5, Shift-JIS and cp1252 text too),
# so decoding is no proof. Each candidate encoding is judged by the share of the non-ASCII
# characters it gives that are common in text written in it: GBK is accepted only when that share
# is high (GB2312 hanzi and CJK punctuation), nothing decodes to a private-use character, and no
# other candidate reads the same bytes as well.
GBK_MIN_SHARE = 0.8
NAMES = {
    "gb18030": "GBK/GB18030 (simplified Chinese)",
    "big5": "Big5 (traditional Chinese)",
    "shift_jis": "Shift-JIS (Japanese)",
    "euc_kr": "EUC-KR (Korean)",
    "cp1252": "Windows-1252 (Western European)",
    "cp1251": "Windows-1251 (Cyrillic)",
    "koi8_r": "KOI8-R (Cyrillic)",
}
_LATIN = frozenset("ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿŒœŠšŽžŸ€‘’“”–—…«»°\xa0")


def _two_bytes(char: str, codec: str) -> int:
    try:
        b = char.encode(codec)
    except UnicodeEncodeError:
        return 0
    return b[0] << 8 | b[1] if len(b) == 2 else 0


def _common_gbk(c: str) -> bool:  # GB2312 hanzi (levels 1 and 2), CJK punctuation, full-width forms
    code = _two_bytes(c, "gb2312")
    return 0xB0A1 <= code <= 0xF7FE or 0xA1A1 <= code <= 0xA1FE or 0xA3A1 <= code <= 0xA3FE


def _common_big5(c: str) -> bool:  # frequent hanzi and punctuation
    code = _two_bytes(c, "big5")
    return 0xA440 <= code <= 0xC67E or 0xA140 <= code <= 0xA3BF


def _common_sjis(c: str) -> bool:  # kana, JIS level-1 kanji, punctuation
    if "\u3041" <= c <= "\u30fe":
        return True
    code = _two_bytes(c, "shift_jis")
    return 0x889F <= code <= 0x9872 or 0x8140 <= code <= 0x81FC


def _common_korean(c: str) -> bool:  # Hangul syllables
    return "\uac00" <= c <= "\ud7a3"


def _common_cyrillic(c: str) -> bool:  # lower-case Cyrillic letters: most of any Russian or Ukrainian text
    return (
        "\u0430" <= c <= "\u045f"
    )  # (cp1251 and KOI8-R swap the cases: read in the wrong one, text is mostly capitals)


_COMMON = {
    "gb18030": _common_gbk,
    "big5": _common_big5,
    "shift_jis": _common_sjis,
    "euc_kr": _common_korean,
    "cp1252": None,
    "cp1251": _common_cyrillic,
    "koi8_r": _common_cyrillic,
}
_NON_ASCII = re.compile("[^\x00-\x7f]")
_ASCII_RUNS = re.compile("[\x00-\x7f]+")
# Accented letters of Western European text sit in words, next to ASCII letters ("Müller"):
# runs of them ("ÍõˆÒ") are what Chinese text read as cp1252 looks like.
_IN_WORD = re.compile(f"(?<=[A-Za-z])[{''.join(sorted(_LATIN))}]|[{''.join(sorted(_LATIN))}](?=[A-Za-z])")


def guess_encodings(sample: bytes) -> dict:
    """{codec: (share of common characters, private-use characters, example)} for each candidate
    encoding that decodes ``sample`` strictly."""
    scores = {}
    for codec, common in _COMMON.items():
        try:
            text = sample.decode(codec)
        except UnicodeDecodeError:
            continue
        counts = Counter(_ASCII_RUNS.sub("", text))  # the non-ASCII characters (quicker than findall)
        total = sum(counts.values())
        if not total:
            continue
        good = len(_IN_WORD.findall(text)) if common is None else sum(n for c, n in counts.items() if common(c))
        private = sum(n for c, n in counts.items() if "\ue000" <= c <= "\uf8ff")
        found = _NON_ASCII.search(text)  # there is one: the sample was chosen for its non-ASCII text
        first = found.start() if found else 0
        scores[codec] = (good / total, private, text[first : first + 12].split("\n")[0])
    return scores


def gbk_verdict(scores: dict) -> str | None:
    """None if the sample reads as plausible GBK; else what is wrong with it as GBK."""
    gbk = scores.get("gb18030")
    if gbk is None:
        return "no text"
    share, private, example = gbk
    if private:
        return f"{private} private-use character(s) ({example!r} ...)"
    if share < GBK_MIN_SHARE:
        return f"mostly unlikely characters ({example!r} ...: {share:.0%} common Chinese characters)"
    for codec, (other, _, _) in scores.items():
        if codec != "gb18030" and other >= share:
            return f"text that reads as well in {NAMES[codec]} ({example!r} ...)"
    return None


def likely_encoding(scores: dict) -> str:
    """The other candidate encoding that reads the sample best (mostly common characters), or ''."""
    best = max(((s[0], c) for c, s in scores.items() if c != "gb18030" and not s[1]), default=None)
    return best[1] if best is not None and best[0] >= 0.5 else ""
