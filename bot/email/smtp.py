"""Sending mail with aiosmtplib: up to ``[email] concurrency`` connections kept open and reused for many messages,
paced to ``rate_per_second``, and every SMTP reply turned into what it means for the send.

- TLS: ``starttls`` upgrades the connection before anything else and ``tls`` starts encrypted; both verify the
  certificate and the host name (``ssl.create_default_context``). A server that does not offer STARTTLS when it is
  required stops the send before AUTH: nothing is sent, and the reason is one line.
- AUTH only after TLS (or on 127.0.0.1 with ``security = "none"``); a refused login stops the send.
- 4xx (421, 450, 451, 452…), a timeout or a dropped connection: ``DeferredError`` (the outbox tries again later).
  A server that drops the connection between messages is reconnected and the message sent on it.
- 5xx to the recipient: ``RecipientRefusedError`` — hard (550 5.1.1 and the rest) or soft (552 / 5.2.2, a full mailbox).
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import ssl
import time
from collections.abc import Mapping
from email.message import EmailMessage

import aiosmtplib

from bot.config_email import EmailConfig

log = logging.getLogger(__name__)

SMTP_POLICY = email.policy.SMTP.clone(max_line_length=998)


class DeferredError(Exception):
    """Try again later (a 4xx reply, a timeout, a dropped connection)."""


class RecipientRefusedError(Exception):
    """The server refused this recipient for good (``hard``) or for now, counted as a soft bounce."""

    def __init__(self, message: str, hard: bool) -> None:
        super().__init__(message)
        self.hard = hard


class SendingStoppedError(Exception):
    """Nothing can be sent until the operator acts: a refused login, no STARTTLS where it is required, a bad
    certificate."""


def _soft(code: int, text: str) -> bool:
    return code == 552 or "5.2.2" in text


def reply_error(error: aiosmtplib.SMTPException) -> Exception:
    """What an aiosmtplib error means for the send."""
    if isinstance(error, aiosmtplib.SMTPAuthenticationError):
        return SendingStoppedError(f"the SMTP server refused the login ({error.code}): check email.username_env and "
                              "email.password_env")  # fmt: skip
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        refused = error.recipients[0] if error.recipients else None
        if refused is None:
            return DeferredError("the SMTP server refused the recipient")
        return _coded(refused.code, refused.message)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return _coded(error.code, error.message)
    return DeferredError(f"SMTP: {type(error).__name__}: {error}")


def _coded(code: int, text: str) -> Exception:
    said = f"{code} {text}".strip()[:200]
    if 400 <= code < 500:
        return DeferredError(f"the SMTP server deferred it: {said}")
    if code >= 500:
        return RecipientRefusedError(f"the SMTP server refused it: {said}", hard=not _soft(code, text))
    return DeferredError(f"unexpected SMTP reply: {said}")


def verifying_context() -> ssl.SSLContext:
    """Certificates and host names verified (the default context; tests add their own CA to it)."""
    return ssl.create_default_context()


class MailSender:
    def __init__(
        self, config: EmailConfig, environ: Mapping[str, str], tls_context: ssl.SSLContext | None = None
    ) -> None:
        self.config = config
        self.credentials = config.credentials(environ)
        self.tls_context = tls_context or verifying_context()
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(config.concurrency)
        self._next_at = 0.0
        self._pace = asyncio.Lock()
        self.connections = 0
        """Connections made so far (a reused connection is not counted again)."""

    async def _connect(self) -> aiosmtplib.SMTP:
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.smtp_host,
            port=config.smtp_port,
            use_tls=config.security == "tls",
            start_tls=False,
            tls_context=self.tls_context if config.security != "none" else None,
            timeout=config.timeout_seconds,
        )
        try:
            await client.connect()
            await client.ehlo()
            if config.security == "starttls":
                if not client.supports_extension("starttls"):
                    raise SendingStoppedError(
                        f"{config.smtp_host}:{config.smtp_port} does not offer STARTTLS, which email.security "
                        '= "starttls" requires: nothing was sent (no login was tried)'
                    )
                await client.starttls(tls_context=self.tls_context)
            if self.credentials is not None:
                await client.login(*self.credentials)
        except ssl.SSLError as error:
            client.close()
            raise SendingStoppedError(f"TLS with {config.smtp_host} failed ({error.reason or error}): check its "
                                 "certificate and name") from None  # fmt: skip
        except aiosmtplib.SMTPException as error:
            client.close()
            raise reply_error(error) from None
        except SendingStoppedError:
            client.close()
            raise
        self.connections += 1
        return client

    async def _paced(self) -> None:
        async with self._pace:
            now = time.monotonic()
            wait = self._next_at - now
            self._next_at = max(now, self._next_at) + 1.0 / self.config.rate_per_second
        if wait > 0:
            await asyncio.sleep(wait)

    async def send(self, message: EmailMessage | bytes, sender: str, recipient: str) -> str:
        """Send ``message`` (or its bytes, CRLF line ends) to ``recipient`` with envelope sender ``sender``; the
        server's reply on success."""
        data = message if isinstance(message, bytes) else message.as_bytes(policy=SMTP_POLICY)
        async with self._slots:
            await self._paced()
            for attempt in (1, 2):
                client = self._idle.get_nowait() if not self._idle.empty() else await self._connect()
                try:
                    errors, reply = await client.sendmail(sender, [recipient], data)
                except aiosmtplib.SMTPServerDisconnected:
                    client.close()
                    if attempt == 2:
                        raise DeferredError("the SMTP server closed the connection twice in a row") from None
                    log.info("the SMTP server closed a connection; sending on a new one")
                    continue
                except aiosmtplib.SMTPException as error:
                    self._keep(client)
                    raise reply_error(error) from None
                except (OSError, TimeoutError) as error:
                    client.close()
                    raise DeferredError(f"SMTP connection failed: {type(error).__name__}: {error}") from None
                self._keep(client)
                if errors:
                    code, text = next(iter(errors.values()))
                    raise _coded(code, text)
                return str(reply)
        raise DeferredError("unreachable")  # pragma: no cover

    def _keep(self, client: aiosmtplib.SMTP) -> None:
        if client.is_connected:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
