"""Per-recipient email digests: routing by owner_email, Jinja2 text + HTML, a MIME message."""

from __future__ import annotations

import datetime as dt
import email.errors
import email.policy
import email.utils
import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import jinja2

from kamrules import i18n
from kamrules.alerts import urgent_order
from kamrules.i18n import _, amount, get_lang
from kamrules.lifecycle.notifiers import DueItem, Rendered

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"


def _breaks(c: str) -> bool:
    """A control character (C0, DEL, C1 with NEL) or a Unicode line/paragraph separator."""
    return unicodedata.category(c) in ("Cc", "Zl", "Zp")


def one_line(text) -> str:
    """Text safe for a header: every line-break class and control character becomes a space, and
    RFC 2047 encoded-word syntax is broken up (``=?`` -> ``= ?``).

    Python's header folder decodes an encoded-word such as ``=?utf-8?q?a=0D=0AReply-To=3A_x?=``
    and writes what it holds back onto the wire, CR LF included (fixed only in 3.13); so no text
    from the store may reach a header looking like one.
    """
    text = "".join(" " if _breaks(c) else c for c in str(text or ""))
    while "=?" in text:
        text = text.replace("=?", "= ?")
    return " ".join(text.split())


_SPECIALS = re.compile(r'[()<>\[\]:;@,."\\]')


def display_name(text) -> str:
    """A display name that cannot change the address list: one line, no RFC 5322 specials, at most 60 characters.

    (Python's header folder can drop the quotes of a long quoted name, which would
    turn ``a: b@x`` into a group of addresses; so specials are never kept.)
    """
    return " ".join(_SPECIALS.sub(" ", one_line(text)).split())[:60].strip()


@functools.lru_cache(maxsize=4096)
def valid_address(text: str | None) -> str | None:
    """The bare address if ``text`` is exactly one valid address without line breaks, else None."""
    if not text or any(c in text for c in "\r\n\x00"):
        return None
    try:
        found = email.utils.getaddresses([text], strict=True)
    except TypeError:  # Python without the strict parser
        found = email.utils.getaddresses([text])
    if len(found) != 1:
        return None
    addr = found[0][1]
    if not addr or "@" not in addr or addr != addr.strip() or " " in addr or "," in addr or not addr.isascii():
        return None  # internationalised (SMTPUTF8) addresses are not supported: they fall back to default_to
    try:
        Address(addr_spec=addr)
    except (ValueError, IndexError, TypeError, email.errors.HeaderParseError):
        return None
    return addr


def route(items: Sequence[DueItem], settings) -> tuple[dict[str, list[DueItem]], list[DueItem]]:
    """owner_email; else the default recipient; else unrouted. Invalid addresses never route."""
    default = valid_address(settings.email.default_to)
    groups: dict[str, list[DueItem]] = {}
    unrouted = []
    for it in items:
        to = valid_address(it.alert.owner_email) or default
        if to is None:
            unrouted.append(it)
        else:
            groups.setdefault(to, []).append(it)
    return groups, unrouted


def fmt_number(v):
    """A number of the evidence as people read it (kamrules.messages.human); other values as they are."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return v
    from kamrules.messages import human

    return human(v)


def number(v):
    """An evidence number in the digest: as fmt_number; in zh, amounts of 10,000 and more in 万 / 亿 (kamrules.i18n.amount)."""
    if get_lang() != "en" and not isinstance(v, bool) and isinstance(v, (int, float)) and abs(v) >= 10_000:
        return amount(v)
    return fmt_number(v)


def context(recipient: str, items: Sequence[DueItem], as_of: str, key: str) -> dict:
    """What the templates see (documented in docs/email.md)."""
    # most urgent first (kamrules.alerts.urgent_order): accounts by their most severe firing alert, then
    # revenue, then name; within an account most severe first, resolved last
    ordered = urgent_order(
        items, alert_of=lambda i: i.alert, rank_of=lambda i: -1 if i.status == "resolved" else i.alert.rank
    )
    groups: list[dict] = []
    for it in ordered:
        a = it.alert
        label = (
            f"{a.account_name} ({a.account_id})"
            if a.account_id
            else _("Portfolio") + (f": {a.scope_key}" if a.scope_key else "")
        )
        if not groups or groups[-1]["label"] != label:
            groups.append(
                {
                    "label": label,
                    "account_id": a.account_id,
                    "account_name": a.account_name,
                    "owner": a.owner,
                    "items": [],
                }
            )
        groups[-1]["items"].append(
            {
                "severity": a.severity,
                "code": a.code,
                "rule": a.rule,
                "ruleset": a.ruleset,
                "message": a.message_in(),  # in the recipient's language (digest renders inside using())
                "action": a.action_in(),
                "reason": it.reason,
                "previous_severity": it.previous_severity,
                "status": it.status,
                "first_seen": it.first_seen,
                "fingerprint": a.fingerprint,
                "numbers": [(k, number(v)) for k, v in a.evidence.items()],
            }
        )
    from kamrules.runs import digest_health, trend_text  # issue 16: each account's score and trend

    health = digest_health(g["account_id"] for g in groups)
    for g in groups:
        g["health"] = health.get(g["account_id"])
        g["health_text"] = trend_text(g["health"])
    firing = [i for i in items if i.status == "firing"]
    counts = Counter(i.alert.severity for i in firing)
    owners = sorted({i.alert.owner for i in items if i.alert.owner})
    who = (
        owners[0]
        if len(owners) == 1
        else (
            ", ".join(owners)
            if 1 < len(owners) <= 3
            else (_("{n} owners").format(n=len(owners)) if owners else recipient)
        )
    )
    return {
        "recipient": recipient,
        "who": who,
        "owners": owners,
        "as_of": as_of,
        "key": key,
        "groups": groups,
        "counts": {s: counts.get(s, 0) for s in ("critical", "warning", "info")},
        "resolved": sum(1 for i in items if i.status == "resolved"),
        "total": len(items),
        "lang": get_lang(),
        "html_lang": {"en": "zh", "zh": "zh-CN"}.get(get_lang(), get_lang()),  # en: as before
        "warnings": list(_WARNINGS.get()),
    }


_WARNINGS: ContextVar[tuple[str, ...]] = ContextVar("kamrules_digest_warnings", default=())


@contextmanager
def digest_warnings(lines):
    """While rendering a check's digests, their header carries these lines (the stale-data warning of
    kamrules.check.Summary.warnings); the notifier hook's signature stays as it is."""
    token = _WARNINGS.set(tuple(lines or ()))
    try:
        yield
    finally:
        _WARNINGS.reset(token)


@functools.lru_cache(maxsize=16)
def environment(templates_dir: str | None, html: bool) -> jinja2.Environment:
    search = ([templates_dir] if templates_dir else []) + [str(BUILTIN_TEMPLATES)]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search, encoding="utf-8"),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    # _() in the templates: the current language's catalogue (kamrules.i18n), looked up at render time
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)
    env.globals.update(label=i18n.label, count=i18n.count, amount=i18n.amount, date=i18n.date)
    return env


def render_parts(ctx: dict, templates_dir: str | None) -> tuple[str, str, str]:
    """(subject, text, html) from subject.txt.j2, digest.txt.j2, digest.html.j2."""
    from kamrules.errors import InputError

    try:
        text_env = environment(templates_dir, html=False)
        subject = text_env.get_template("subject.txt.j2").render(ctx)
        text = text_env.get_template("digest.txt.j2").render(ctx)
        html = environment(templates_dir, html=True).get_template("digest.html.j2").render(ctx)
    except jinja2.TemplateSyntaxError as e:
        raise InputError(f"{e.filename}:{e.lineno}: template error: {e.message}") from e
    except jinja2.TemplateError as e:
        raise InputError(f"email template error: {type(e).__name__}: {e}") from e
    return one_line(subject), text, html


def domain_of(address: str) -> str:
    addr = valid_address(email.utils.parseaddr(one_line(address))[1])
    return addr.rsplit("@", 1)[1] if addr else "kamrules.invalid"


def message_id(key: str, sender: str) -> str:
    """Deterministic from the idempotency key: a resent duplicate has the same Message-ID."""
    return f"<{key}.kamrules@{domain_of(sender)}>"


def sender_address(sender: str) -> Address:
    """The From address of settings.email.smtp_from; InputError if it is not one valid address."""
    from kamrules.errors import InputError

    name, addr = email.utils.parseaddr(one_line(sender))
    if valid_address(addr) is None:
        raise InputError(
            f"smtp_from {sender!r}: not a valid address (expected e.g. 'kamrules <ka-alerts@example.com>')"
        )
    try:
        return Address(display_name=display_name(name), addr_spec=addr)
    except (ValueError, IndexError, email.errors.HeaderParseError) as e:
        raise InputError(f"smtp_from {sender!r}: not a valid address ({e})") from e


def build_message(
    *,
    sender: str,
    recipient: str,
    to_name: str | None,
    subject: str,
    text: str,
    html: str | None,
    key: str,
    now: dt.datetime | None = None,
) -> EmailMessage:
    """A multipart/alternative UTF-8 message; no caller-provided text can add a header."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = one_line(subject)
    msg["From"] = sender_address(sender)
    name = display_name(to_name)
    msg["To"] = Address(display_name=name, addr_spec=recipient) if name else Address(addr_spec=recipient)
    msg["Date"] = email.utils.format_datetime(now or dt.datetime.now(dt.UTC))
    msg["Message-ID"] = message_id(key, sender)
    msg["X-Kamrules-Key"] = key
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, charset="utf-8")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8")
    _verify_headers(msg)
    return msg


# The headers a digest carries, each once: no store value can add one (verified before queueing).
DIGEST_HEADERS = [
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "x-kamrules-key",
    "auto-submitted",
    "mime-version",
    "content-type",
]


def _verify_headers(msg: EmailMessage) -> None:
    """Defence in depth: the serialised message has exactly the headers we set, each once.

    Raises ValueError otherwise (the message is then not queued), so a folding quirk of some
    Python version can never put a store value on the wire as a header.
    """
    head = msg.as_bytes().split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    names = [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line and line[0] not in " \t"]
    expected = DIGEST_HEADERS + (["content-transfer-encoding"] if not msg.is_multipart() else [])
    if sorted(names) != sorted(expected) or any(c in head.replace("\r\n", "") for c in "\r\n\0"):
        raise ValueError(f"refusing to build a message with unexpected header lines: {names}")


def mail_lang(recipient: str, settings) -> str | None:
    """The language of mail to ``recipient``: [email.lang_by_recipient], then [email] lang, else the run's (None)."""
    email_settings = settings.email
    by = getattr(email_settings, "lang_by_recipient", None) or {}
    return by.get(recipient) or by.get(recipient.lower()) or getattr(email_settings, "lang", None)


def render_digest(recipient: str, items: Sequence[DueItem], key: str, as_of: str, settings) -> Rendered:
    from kamrules.lifecycle.digest_summary import chart_png, summary

    with i18n.using(mail_lang(recipient, settings)):
        ctx = context(recipient, items, as_of, key)
        # the opening summary: new, resolved, still firing, the book's health and a chart of it
        ctx["summary"] = summary(items, ctx["owners"], settings.email.resolved_notices)
        health = ctx["summary"]["health"]
        ctx["chart_cid"] = f"health-{key}@kamrules" if health else None
        subject, text, html = render_parts(ctx, settings.email.templates_dir)
    owners_here = {i.alert.owner for i in items if valid_address(i.alert.owner_email) == recipient}
    display = next(iter(owners_here)) if len(owners_here) == 1 else None
    msg = build_message(
        sender=settings.email.smtp_from,
        recipient=recipient,
        to_name=display,
        subject=subject,
        text=text,
        html=html,
        key=key,
    )
    if health and f"cid:{ctx['chart_cid']}" in html:  # a user's template without the picture gets no attachment
        attach_related(msg, chart_png(health), ctx["chart_cid"])
    return Rendered(subject=subject, payload=msg.as_bytes())


def attach_related(msg: EmailMessage, png: bytes, cid: str) -> None:
    """Put ``png`` beside the HTML part in a multipart/related part, Content-ID <cid> (the HTML says src="cid:...")."""
    html_part = msg.get_body(("html",))
    html_part.add_related(
        png, maintype="image", subtype="png", cid=f"<{cid}>", disposition="inline", filename="health.png"
    )
