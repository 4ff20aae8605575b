"""Bounces and complaints, as an MTA pipes them to ``rankbot email bounce`` (or a provider posts them): who they are
about and what they mean.

- The VERP address (``bounces+<subscriber key>@domain``, the envelope sender of every email) names the subscriber
  whatever the bounce's format.
- RFC 3464 delivery status notifications (``multipart/report; report-type=delivery-status``) are read field by
  field: ``Status: 5.x.x`` with ``Action: failed`` is a hard bounce, ``4.x.x`` a soft one.
- ARF complaints (``report-type=feedback-report``) suppress at once.
- Anything else goes to flufl.bounce, which knows many MTAs' home-made formats (its permanent failures are hard).
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from typing import Literal

from digests.subscribers import SubscriberState
from storage.subscribers import Subscribers

Kind = Literal["hard", "soft", "complaint"]
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


@dataclass(frozen=True, slots=True)
class Bounce:
    kind: Kind
    key: str | None = None
    """The subscriber key from the VERP address, when the bounce came back to one."""
    addresses: frozenset[str] = field(default_factory=frozenset)
    """The failed recipients the report names (used when there is no VERP key)."""
    status: str = ""
    """The DSN status code (``5.1.1``), when there is one."""


def _verp_key(message: Message, local: str) -> str | None:
    pattern = re.compile(rf"{re.escape(local)}\+([A-Za-z0-9_-]{{16,64}})@", re.IGNORECASE)
    for name in ENVELOPE_HEADERS:
        for value in message.get_all(name) or ():
            found = pattern.search(str(value))
            if found:
                return found.group(1)
    return None


def _address(value: str) -> str:
    """``rfc822; ada@example.org`` → ``ada@example.org``."""
    return value.split(";", 1)[-1].strip().strip("<>")


def _report_type(message: Message) -> str:
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type", "") or "").lower()


def _field_blocks(part: Message) -> list[Message]:
    """A report part's blocks of fields (``message/delivery-status`` is parsed into them; a feedback report is
    one block of text, parsed here)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = payload.decode(errors="replace") if isinstance(payload, bytes) else str(payload or "")
    return [HeaderParser().parsestr(text.lstrip())]


def _dsn(message: Message) -> tuple[Kind, frozenset[str], str] | None:
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = _field_blocks(part)
        failed: dict[str, str] = {}
        for block in blocks[1:]:  # the first block is about the message, the rest one per recipient
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip().split(" ")[0]
            recipient = _address(str(block.get("Final-Recipient") or block.get("Original-Recipient") or ""))
            if action in ("failed", "delayed") and recipient:
                failed[recipient] = status
        if failed:
            statuses = sorted(failed.values())
            kind: Kind = "hard" if any(s.startswith("5") for s in statuses) else "soft"
            return kind, frozenset(failed), statuses[-1]
    return None


def _complaint(message: Message) -> frozenset[str]:
    found: set[str] = set()
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            for block in _field_blocks(part):
                for name in ("Original-Rcpt-To", "Removal-Recipient"):
                    if block.get(name):
                        found.add(_address(str(block.get(name))))
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            original = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(original, Message) and original.get("To"):
                found.add(_address(str(original.get("To"))))
    return frozenset(found)


def read_bounce(raw: bytes, verp_local: str = "bounces") -> Bounce | None:
    """What a bounce or complaint says; ``None`` when it is neither (an ordinary reply, an auto-responder)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    key = _verp_key(message, verp_local)
    report = _report_type(message)
    if report == "feedback-report":
        return Bounce("complaint", key, _complaint(message))
    dsn = _dsn(message) if report == "delivery-status" else None
    if dsn is not None:
        kind, addresses, status = dsn
        return Bounce(kind, key, addresses, status)
    from flufl.bounce import all_failures  # only for the formats the standard ones did not cover

    temporary, permanent = all_failures(message)
    if permanent or temporary:
        kind = "hard" if permanent else "soft"
        addresses = frozenset(a.decode(errors="replace") for a in (permanent or temporary))
        return Bounce(kind, key, addresses)
    return None


def applied(found: Bounce, subscribers: Subscribers, soft_limit: int, dry_run: bool = False) -> list[str]:
    """Mark the subscribers ``found`` is about (by its VERP key, else by the addresses it names); a line per
    subscriber saying what was done. A hard bounce or a complaint suppresses at once; soft ones at ``soft_limit``."""
    keys = [found.key] if found.key else []
    if not keys:
        keys = [match.key for address in sorted(found.addresses) if (match := subscribers.find(address)) is not None]
    if not keys:
        named = ", ".join(sorted(found.addresses)) or "no recipient"
        return [f"{found.kind} bounce for {named}: no subscriber matched, nothing done"]
    said = []
    for key in keys:
        before = subscribers.by_key(key)
        if before is None:
            said.append(f"{found.kind} bounce: its VERP key matches no subscriber, nothing done")
            continue
        if dry_run:
            said.append(f"{found.kind} bounce for {before.address} (dry run: nothing changed)")
            continue
        if found.kind == "complaint":
            subscribers.set_state(key, SubscriberState.COMPLAINED)
            after = subscribers.by_key(key)
        else:
            after = subscribers.bounced(key, found.kind == "hard", soft_limit)
        status = f", {found.status}" if found.status else ""
        said.append(f"{found.kind} bounce{status} for {before.address}: now {after.state.value if after else 'gone'}")
    return said
