"""Terminal text that lines up with Chinese (double-width) characters: width, pad, wrap, tables."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal (CJK characters count 2)."""
    return sum(char_width(c) for c in text)


def truncate(text: str, cols: int, ellipsis: str = "…") -> str:
    if width(text) <= cols:
        return text
    out, used = "", 0
    limit = cols - width(ellipsis)
    for ch in text:
        w = char_width(ch)
        if used + w > limit:
            break
        out += ch
        used += w
    return out + ellipsis


def pad(text: str, cols: int, align: str = "<") -> str:
    """``text`` padded with spaces to ``cols`` display columns (truncated with … if longer)."""
    text = truncate(text, cols)
    gap = cols - width(text)
    return " " * gap + text if align == ">" else text + " " * gap


# Kinsoku (禁则): full-width marks that may not start a line, and openers that may not end one.
# Only CJK punctuation: English text breaks as before.
NO_START = frozenset("，。、；：？！）」』》】〉〕］｝〗〙”’…‥·・ー～％")
NO_END = frozenset("（「『《【〈〔［｛〖〘“‘")


def _latin(c: str) -> bool:
    """Part of a Latin run (a fact name, a code, a date, a number) that a CJK line must not break inside."""
    return c.isascii() and (c.isalnum() or c in "_`.-:%,")


def _take(word: str, room: int) -> str:
    """The longest start of ``word`` that fits ``room`` columns, shortened so that the rest does not start
    with a NO_START mark and the piece does not end with a NO_END one (the mark moves to the next line), nor
    ends inside a Latin run such as ``days_since_survey`` (unless the run alone is wider than the room)."""
    piece, used = "", 0
    for ch in word:
        if used + char_width(ch) > room:
            break
        piece += ch
        used += char_width(ch)
    greedy = piece
    while piece and len(piece) < len(word) and (word[len(piece)] in NO_START or piece[-1] in NO_END):
        piece = piece[:-1]
    kinsoku = piece
    while (
        piece
        and len(piece) < len(word)
        and (word[len(piece)] in NO_START or piece[-1] in NO_END or (_latin(piece[-1]) and _latin(word[len(piece)])))
    ):
        piece = piece[:-1]
    return piece or kinsoku or greedy  # a run wider than the line, or a line of nothing but marks: break anyway


def wrap(text: str, cols: int) -> list[str]:
    """Wrap on spaces by display width; words wider than ``cols`` are broken, and text with CJK characters
    (which breaks between any two characters) fills the line first. No line starts with a full-width
    closing mark such as ，。、）」 (kinsoku)."""
    cols = max(cols, 4)
    lines: list[str] = []
    for para in text.split("\n"):
        cur, cur_w = "", 0
        for word in para.split(" "):
            ww = width(word)
            sep = 1 if cur else 0
            if cur_w + sep + ww <= cols:
                cur, cur_w = cur + (" " if sep else "") + word, cur_w + sep + ww
                continue
            if cur and ww > len(word) and cols - cur_w - sep >= 2:  # wide characters: fill this line's rest
                piece = _take(word, cols - cur_w - sep)
                if piece and word[len(piece)] not in NO_START:
                    cur += (" " if sep else "") + piece
                    word = word[len(piece) :]
            if cur:
                lines.append(cur)
                cur, cur_w = "", 0
            while width(word) > cols:
                piece = _take(word, cols)
                lines.append(piece)
                word = word[len(piece) :]
            cur, cur_w = word, width(word)
        lines.append(cur)
    return lines


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    max_width: int = 80,
    wrap_last: bool = True,
    aligns: Sequence[str] | None = None,
) -> str:
    """A plain table: columns sized to content, the last column wrapped to fit ``max_width``.

    Control characters and bidi controls in headers and cells are shown escaped (kamrules.textsafe.term)."""
    from kamrules.textsafe import term

    n = len(headers)
    aligns = list(aligns or ["<"] * n)
    headers = [term(h) for h in headers]
    cells = [[term(c) for c in r] for r in rows]
    widths = [max([width(headers[i])] + [width(r[i]) for r in cells]) for i in range(n)]
    fixed = sum(widths[:-1]) + 2 * (n - 1)
    if wrap_last and fixed + widths[-1] > max_width:
        widths[-1] = max(max_width - fixed, 20)
    out = ["  ".join(pad(h, widths[i], aligns[i]) for i, h in enumerate(headers)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    for r in cells:
        last = wrap(r[-1], widths[-1]) if wrap_last else [r[-1]]
        if aligns[-1] == ">":
            last = [pad(x, widths[-1], ">") for x in last]
        first = "  ".join(pad(r[i], widths[i], aligns[i]) for i in range(n - 1))
        out.append((first + ("  " if n > 1 else "") + last[0]).rstrip())
        for more in last[1:]:
            out.append((" " * (fixed + (2 if n > 1 else 0)) + more).rstrip())
    return "\n".join(out)
