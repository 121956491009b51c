"""Header injection, HTML injection and template overrides, checked on what the SMTP server receives."""

import datetime as dt

import pytest
from smtp_server import Result, alert, settings_for

from kamrules.config import load_settings
from kamrules.errors import InputError
from kamrules.lifecycle import digest, record_and_notify

NOW = dt.datetime(2026, 10, 31, 8, 0, tzinfo=dt.UTC)


def headers_of(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii")


def test_crlf_in_names_and_addresses_never_makes_a_header(store, server, pm):
    s = settings_for(server.port, KAMRULES_EMAIL_DEFAULT_TO="team@example.com")
    evil = Result(
        (
            alert(
                "KAM101",
                "critical",
                "A1",
                "华东\r\nX-Injected: yes",
                "王磊\r\nBcc: evil@example.com",
                "wl@example.com\r\nBcc: evil@example.com",
            ),
            alert(
                "KAM201",
                "warning",
                "A2",
                "Acme\nX-Injected: 2",
                "李娜\nCc: evil@example.com",
                "lina@example.com",
                message="line one\r\nBcc: evil@example.com",
            ),
        )
    )
    r = record_and_notify(store, evil, settings=s, pm=pm, now=NOW)
    assert r.sent == 2 and r.failed == 0
    rcpts = sorted(to for m in server.received for to in m.rcpt_tos)
    assert rcpts == ["lina@example.com", "team@example.com"]  # the bad owner_email fell back to the default
    for got in server.received:
        head = headers_of(got.data)
        names = [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line and not line[0].isspace()]
        assert "bcc" not in names and "cc" not in names and "x-injected" not in names
        assert len(names) == len(set(names))
    lina = [m for m in server.received if "lina@example.com" in m.rcpt_tos][0].message
    assert "\n" not in lina["To"] and lina["To"].addresses[0].addr_spec == "lina@example.com"
    assert lina["To"].addresses[0].display_name == "李娜 Cc evil example com"  # one line, no specials


@pytest.mark.parametrize(
    "bad",
    [
        "a@example.com\r\nBcc: b@example.com",
        "a@example.com, b@example.com",
        "not an address",
        "",
        None,
        "a@b@c",
        "王磊@例子.公司",
        "@a",
        '"x" <@a>',
    ],
)
def test_invalid_addresses_never_route(bad):
    assert digest.valid_address(bad) is None


def test_settings_refuse_line_breaks_in_addresses():
    with pytest.raises(InputError) as e:
        load_settings(environ={"KAMRULES_SMTP_FROM": "k@example.com\r\nBcc: evil@example.com"})
    assert "email.smtp_from: Value error, must not contain a line break" in e.value.render()
    with pytest.raises(InputError) as e:
        load_settings(environ={"KAMRULES_EMAIL_DEFAULT_TO": "t@example.com\nBcc: evil@example.com"})
    assert "email.default_to" in e.value.render()


def test_everything_from_the_store_is_html_escaped(store, server, pm):
    s = settings_for(server.port)
    xss = alert(
        "KAM101",
        "critical",
        "A&1",
        "<script>alert('x')</script>",
        "王<b>磊</b>",
        "wl@example.com",
        message='<img src=x onerror="alert(1)"> & more',
        action="</td></tr></table><a href='javascript:x'>click</a>",
        evidence={"<i>k</i>": "<svg onload=alert(1)>"},
        rule="<u>rule</u>",
    )
    record_and_notify(store, Result((xss,)), settings=s, pm=pm, now=NOW)
    html = server.received[0].message.get_body(("html",)).get_content()
    for raw in ("<script>", "<img", "<svg", "<i>k", "<u>", "<b>磊", "</td></tr></table><a", "javascript:x'>"):
        assert raw not in html, raw
    for escaped in (
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;",
        "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp; more",
        "A&amp;1",
        "&lt;svg onload=alert(1)&gt;",
    ):
        assert escaped in html, escaped
    text = server.received[0].message.get_body(("plain",)).get_content()
    assert "<script>alert('x')</script>" in text  # the text part shows it as it is


def test_user_templates_override_by_file_name(store, server, pm, tmp_path):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "subject.txt.j2").write_text(
        "KA 预警 {{ who }}: {{ counts.critical }} 严重 ({{ as_of }})\n", encoding="utf-8"
    )
    s = settings_for(server.port, KAMRULES_EMAIL_TEMPLATES=str(tdir))
    record_and_notify(store, Result((alert(severity="critical"),)), settings=s, pm=pm, now=NOW)
    m = server.received[0].message
    assert m["Subject"] == "KA 预警 王磊: 1 严重 (2026-10-31)"
    assert "[CRITICAL] KAM101" in m.get_body(("plain",)).get_content()  # the built-in body is still used


def test_broken_user_template_names_file_and_line(tmp_path):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "digest.txt.j2").write_text("ok\n{% for x in %}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"digest.txt.j2:2: template error"):
        digest.render_parts(
            {"who": "x", "counts": {"critical": 0, "warning": 0, "info": 0}, "resolved": 0, "as_of": "d"}, str(tdir)
        )


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kamrules.lifecycle.digest import DIGEST_HEADERS  # noqa: E402

HEADERS = set(DIGEST_HEADERS)  # the digest adds no header of its own beyond these
nasty = st.lists(
    st.sampled_from(list('ab王磊 :,;<>@()[]."\\\r\n\t\x0b\x0c\x85\u2028=?') + ["Bcc: x@evil.com", "\r\nX-A: 1"]),
    max_size=20,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=nasty, name=nasty, sender_name=nasty)
def test_no_text_adds_a_header(subject, name, sender_name):
    import email as email_lib

    try:
        msg = digest.build_message(
            sender=f'"{sender_name}" <k@example.com>',
            recipient="to@example.com",
            to_name=name,
            subject=subject,
            text="body\r\nBcc: y@evil.com\r\n",
            html="<p>x</p>",
            key="k" * 32,
        )
    except InputError as e:  # a From that does not parse is refused, never sent as is
        assert "smtp_from" in str(e)
        return
    raw = msg.as_bytes()
    parsed = email_lib.message_from_bytes(raw, policy=email_lib.policy.default)
    assert {k.lower() for k in parsed.keys()} == HEADERS
    assert [a.addr_spec for a in parsed["To"].addresses] == ["to@example.com"]
    assert len(parsed["From"].addresses) == 1  # smtp_from is the admin's setting: one address, whatever its quoting
    assert parsed["To"].addresses[0].display_name.split() == digest.display_name(name).split() or "".join(
        parsed["To"].addresses[0].display_name.split()
    ) == "".join(digest.display_name(name).split())  # folding may add a space
    assert " ".join(parsed["Subject"].split()) == digest.one_line(subject)  # folding may double a space


def test_sender_with_chinese_name_and_bad_sender():
    msg = digest.build_message(
        sender="KA 预警 <ka-alerts@example.com>",
        recipient="to@example.com",
        to_name="王磊",
        subject="s",
        text="t",
        html=None,
        key="k" * 32,
    )
    assert msg["From"].addresses[0].display_name == "KA 预警"
    with pytest.raises(InputError, match="smtp_from 'not an address'"):
        digest.build_message(
            sender="not an address", recipient="to@example.com", to_name=None, subject="s", text="t", html=None, key="k"
        )
