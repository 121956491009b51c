"""Test fixtures: a real SMTP server (aiosmtpd) on 127.0.0.1, optional AUTH and STARTTLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class Sink:
    """aiosmtpd handler keeping every message; refuses recipients listed in ``refuse``."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    refuse_reply: str = "550 5.1.1 mailbox unavailable"  # the answer to a refused RCPT (a 4xx: try again later)
    data_reply: str | None = None  # refuse every message after DATA with this reply, e.g. "554 5.7.1 spam"
    lock: threading.Lock = field(default_factory=threading.Lock)
    # to simulate a client killed mid-send: DATA waits on ``gate`` (after or before accepting)
    gate: threading.Event | None = None
    accept_before_block: bool = False
    entered: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        got = Received(
            envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content or envelope.content)
        )
        if self.data_reply:
            return self.data_reply
        if self.gate is not None and not self.gate.is_set():
            if self.accept_before_block:
                self._keep(got)
            self.entered.set()
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait)
            return "250 Message accepted for delivery" if self.accept_before_block else "451 4.3.0 not accepted"
        self._keep(got)
        return "250 Message accepted for delivery"

    def _keep(self, got: Received) -> None:
        with self.lock:
            self.received.append(got)

    def message_ids(self) -> list[str]:
        return [r.message["Message-ID"] for r in self.received]


class Authenticator:
    """Accepts exactly one user/password pair."""

    def __init__(self, user: str, password: str):
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = getattr(auth_data, "login", None) == self.user and getattr(auth_data, "password", None) == self.password
        return AuthResult(success=ok, handled=False)


class SmtpServer:
    """A running aiosmtpd Controller; ``stop()`` it (the fixture does)."""

    def __init__(
        self,
        port: int | None = None,
        tls_context=None,
        authenticator=None,
        require_starttls: bool = False,
        ssl_context=None,
    ):
        self.port = port or free_port()
        self.sink = Sink()
        kwargs = {"ssl_context": ssl_context} if ssl_context is not None else {}
        if authenticator is not None:
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=tls_context is not None)
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port, ready_timeout=10, **kwargs)
        self.controller.start()

    @property
    def received(self) -> list[Received]:
        return self.sink.received

    def stop(self) -> None:
        self.controller.stop()


def self_signed_cert(folder) -> tuple[str, str]:
    """(cert.pem, key.pem) for CN=127.0.0.1 with an IP SAN, made with the `cryptography` package."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


# --- inputs of the lifecycle: alerts as a check emits them ---------------------------------


@dataclass(frozen=True)
class Result:
    """What run_check returns, as far as record_and_notify reads it (alerts + summary)."""

    alerts: tuple
    summary: object = None
    as_of: str = "2026-10-31"


def alert(
    code="KAM101",
    severity="warning",
    account_id="A001",
    account_name="华东机电",
    owner="王磊",
    owner_email="wanglei@example.com",
    message=None,
    ruleset=None,
    **kw,
):
    from kamrules.alerts import Alert

    ruleset = ruleset or {
        "1": "over_subsidising",
        "2": "neglected_small_clients",
        "3": "missing_escalation_channels",
        "4": "stalled_stages",
    }.get(code[3], "examples")
    return Alert(
        ruleset=ruleset,
        code=code,
        rule=kw.pop("rule", f"rule_{code.lower()}"),
        severity=severity,
        message=message
        or f"concessions 412,000 = 23% of revenue 1,790,000 over the 12 months to 2026-10-31; limit 20% ({code})",
        action=kw.pop("action", "Tie further rebates to a signed volume commitment."),
        as_of=kw.pop("as_of", "2026-10-31"),
        account_id=account_id,
        account_name=account_name,
        owner=owner,
        owner_email=owner_email,
        evidence=kw.pop(
            "evidence", {"concessions_12m": 412000.0, "revenue_12m": 1790000.0, "concession_ratio": 0.2302}
        ),
        **kw,
    )


def settings_for(port: int, tls: str = "none", **email_kw):
    """Real Settings pointing at the loopback server (env-style values, like a user would set)."""
    from kamrules.config import load_settings

    env = {
        "KAMRULES_SMTP_HOST": "127.0.0.1",
        "KAMRULES_SMTP_PORT": str(port),
        "KAMRULES_SMTP_TLS": tls,
        "KAMRULES_SMTP_FROM": "kamrules <kamrules@example.com>",
    }
    env.update({k: v for k, v in email_kw.items() if k.startswith("KAMRULES_")})
    s = load_settings(path=None, environ=env)
    rest = {k: v for k, v in email_kw.items() if not k.startswith("KAMRULES_")}
    if rest:
        import dataclasses

        s = dataclasses.replace(s, email=dataclasses.replace(s.email, **rest))
    return s


# --- hostile servers: slow, echoing AUTH, dropping the connection ------------------------------


def _hostile_class(delay: float = 0.0, echo_auth: bool = False, drop_on: str | None = None):
    from aiosmtpd.smtp import SMTP

    class Hostile(SMTP):
        async def push(self, status):
            if delay:
                await asyncio.sleep(delay)  # every reply, greeting included, just under the client's timeout
            await super().push(status)

        async def smtp_AUTH(self, arg):
            if not echo_auth:
                return await super().smtp_AUTH(arg)
            mech, _, rest = arg.partition(" ")
            if mech.upper() == "LOGIN":  # LOGIN: the user with the command, then the password on its own line
                if not rest:
                    await self.push("334 VXNlcm5hbWU6")
                    rest = (await self._reader.readline()).decode().strip()
                await self.push("334 UGFzc3dvcmQ6")
                pw = (await self._reader.readline()).decode().strip()
                return await self.push(f"535 5.7.8 authentication failed for AUTH LOGIN {rest} {pw}")
            await self.push(f"535 5.7.8 authentication failed for AUTH {arg}")

        async def smtp_RCPT(self, arg):
            if drop_on == "RCPT":
                self.transport.close()  # the connection drops mid-conversation
                return
            return await super().smtp_RCPT(arg)

    return Hostile


class HostileServer(SmtpServer):
    """SmtpServer whose replies are delayed, which echoes AUTH lines in its 535, or drops at RCPT."""

    def __init__(self, delay: float = 0.0, echo_auth: bool = False, drop_on: str | None = None, **kw):
        cls = _hostile_class(delay, echo_auth, drop_on)
        self.port = kw.pop("port", None) or free_port()
        self.sink = Sink()
        sink = self.sink
        kwargs = {}
        if echo_auth:
            kwargs.update(authenticator=Authenticator("nobody", "x"), auth_required=True, auth_require_tls=False)

        class _Controller(Controller):
            def factory(self):
                return cls(sink, hostname="127.0.0.1", **kwargs)

        self.controller = _Controller(sink, hostname="127.0.0.1", port=self.port, ready_timeout=10)
        self.controller.start()
