"""SMTP paths against aiosmtpd on loopback: AUTH, STARTTLS with a generated certificate, SSL refusal."""

import dataclasses
import datetime as dt
import ssl

import pytest
from smtp_server import Authenticator, Result, SmtpServer, alert, self_signed_cert, server_tls_context, settings_for

from kamrules.errors import DeliveryError
from kamrules.lifecycle import outbox, record_and_notify, send_due
from kamrules.lifecycle.testmail import send_test

NOW = dt.datetime(2026, 10, 31, 8, 0, tzinfo=dt.UTC)
PASSWORD = "pä55-秘密-word"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture()
def auth_server():
    srv = SmtpServer(authenticator=Authenticator("bot", PASSWORD))
    yield srv
    srv.stop()


def test_auth_with_ascii_password_uses_smtplib_login(store, pm):
    srv = SmtpServer(authenticator=Authenticator("bot@example.com", "s3cret!"))
    try:
        s = settings_for(srv.port, KAMRULES_SMTP_USER="bot@example.com", KAMRULES_SMTP_PASSWORD="s3cret!")
        r = record_and_notify(store, Result((alert(),)), settings=s, pm=pm, now=NOW)
        assert (r.sent, r.failed) == (1, 0), r.errors
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def test_auth_refused_stays_queued_and_password_never_shown(store, auth_server, pm):
    bad = settings_for(auth_server.port, KAMRULES_SMTP_USER="bot", KAMRULES_SMTP_PASSWORD="wrong-" + PASSWORD)
    r = record_and_notify(store, Result((alert(),)), settings=bad, pm=pm, now=NOW)
    assert (r.sent, r.failed, r.undelivered) == (0, 1, 1)
    row = outbox.list_outbox(store.conn, "pending")[0]
    assert "SMTPAuthenticationError" in row["last_error"] and "535" in row["last_error"]
    everything = repr(r) + r.summary_line() + repr(bad) + str(dataclasses.asdict(bad.email))
    assert PASSWORD not in everything and "wrong-" not in everything
    assert auth_server.received == []
    good = settings_for(auth_server.port, KAMRULES_SMTP_USER="bot", KAMRULES_SMTP_PASSWORD=PASSWORD)
    r = send_due(store, ["email"], good, pm, now=NOW + dt.timedelta(minutes=5))
    assert (r.sent, r.undelivered) == (1, 0)
    assert len(auth_server.received) == 1


def test_no_auth_when_server_requires_it(store, auth_server, pm):
    r = record_and_notify(store, Result((alert(),)), settings=settings_for(auth_server.port), pm=pm, now=NOW)
    assert (r.failed, r.undelivered) == (1, 1)
    assert "530" in r.errors[0]


def test_starttls_with_verified_certificate(store, pm, cert):
    srv = SmtpServer(
        tls_context=server_tls_context(*cert), require_starttls=True, authenticator=Authenticator("bot", PASSWORD)
    )
    try:
        s = settings_for(
            srv.port,
            tls="starttls",
            KAMRULES_SMTP_CA_FILE=cert[0],
            KAMRULES_SMTP_USER="bot",
            KAMRULES_SMTP_PASSWORD=PASSWORD,
        )
        r = record_and_notify(store, Result((alert(),)), settings=s, pm=pm, now=NOW)
        assert (r.sent, r.failed) == (1, 0), r.errors
        assert srv.received[0].message["Subject"].startswith("[kamrules] 王磊: 1 warning")
        # without trusting the certificate the send fails and stays queued
        srv.sink.received.clear()
        untrusted = settings_for(srv.port, tls="starttls", KAMRULES_SMTP_USER="bot", KAMRULES_SMTP_PASSWORD=PASSWORD)
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            send_test(untrusted, "me@example.com")
        # plain text to a server that requires STARTTLS is refused
        with pytest.raises(DeliveryError, match="530"):
            send_test(settings_for(srv.port, tls="none"), "me@example.com")
        assert srv.received == []
    finally:
        srv.stop()


def test_implicit_tls_ssl_mode(store, pm, cert):
    srv = SmtpServer(ssl_context=server_tls_context(*cert), authenticator=Authenticator("bot", PASSWORD))
    try:
        s = settings_for(
            srv.port,
            tls="ssl",
            KAMRULES_SMTP_CA_FILE=cert[0],
            KAMRULES_SMTP_USER="bot",
            KAMRULES_SMTP_PASSWORD=PASSWORD,
        )
        r = record_and_notify(store, Result((alert(),)), settings=s, pm=pm, now=NOW)
        assert (r.sent, r.failed) == (1, 0), r.errors
        assert len(srv.received) == 1
    finally:
        srv.stop()


def test_starttls_against_a_server_without_tls_fails_cleanly(pm):
    srv = SmtpServer()
    try:
        with pytest.raises(DeliveryError, match="STARTTLS extension not supported"):
            send_test(settings_for(srv.port, tls="starttls"), "me@example.com")
    finally:
        srv.stop()


def test_notify_test_message(pm):
    srv = SmtpServer()
    try:
        mid = send_test(settings_for(srv.port), "me@example.com")
        m = srv.received[0].message
        assert m["Message-ID"] == mid and m["Subject"] == "[kamrules] test message 测试邮件"
        assert "测试邮件" in m.get_content()
    finally:
        srv.stop()


def test_ssl_context_uses_system_store_by_default():
    from kamrules.lifecycle.smtp import _context

    ctx = _context(settings_for(25))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
