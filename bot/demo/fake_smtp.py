"""A real SMTP server on 127.0.0.1 for the tests and benchmarks: aiosmtpd in its own thread, recording every
message it accepts (envelope and bytes), with scripted replies per recipient (421, 451, 550 5.1.1, 552…), a
connection dropped after every N messages, optional STARTTLS with a self-signed certificate for 127.0.0.1, and
optional AUTH (which aiosmtpd offers only after TLS)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Certificate:
    """A self-signed certificate for 127.0.0.1: the server's key pair, and the file a client trusts."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying context (certificate and host name) that trusts this certificate."""
        return ssl.create_default_context(cafile=str(self.cert_file))


def self_signed(folder: Path) -> Certificate:
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
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(cert_file, key_file)


@dataclass
class _Handler:
    replies: dict[str, list[str]] = field(default_factory=dict)
    drop_after: int | None = None
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        with self.lock:
            scripted = self.replies.get(address.lower())
            reply = scripted.pop(0) if scripted else None
        if reply is not None and not reply.startswith("250"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow server: the message is taken only after this
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        count = getattr(session, "rankbot_count", 0) + 1
        session.rankbot_count = count
        if self.drop_after is not None and count % self.drop_after == 0:
            server.loop.call_soon(server.transport.close)  # after this reply: the next message needs a new connection
        return "250 2.0.0 Message accepted"


class FakeSmtp:
    def __init__(
        self,
        certificate: Certificate | None = None,
        starttls: bool = True,
        login: tuple[str, str] | None = None,
        drop_after: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.handler = _Handler(drop_after=drop_after, delay=delay)
        self.port = _free_port()
        options: dict[str, Any] = {}
        if certificate is not None and starttls:
            options["tls_context"] = certificate.server_context()
        if login is not None:
            options["authenticator"] = self._authenticator(login)
            options["auth_require_tls"] = True
            options["auth_exclude_mechanism"] = ["LOGIN"]  # PLAIN only: one round trip
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)

    def _authenticator(self, login: tuple[str, str]) -> Any:
        def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            user = data.login.decode() if isinstance(data, LoginPassword) else ""
            self.handler.logins.append(user)
            good = isinstance(data, LoginPassword) and (user, data.password.decode()) == login
            return AuthResult(success=good, handled=False)  # handled=False: aiosmtpd answers 535 itself

        return check

    def __enter__(self) -> FakeSmtp:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()

    def script(self, recipient: str, *replies: str) -> None:
        """The next RCPT TO for ``recipient`` get ``replies`` in turn (``550 5.1.1 No such user``…)."""
        with self.handler.lock:
            self.handler.replies.setdefault(recipient.lower(), []).extend(replies)

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def logins(self) -> list[str]:
        return list(self.handler.logins)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
