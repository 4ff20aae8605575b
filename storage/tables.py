"""SQLModel tables. They stay inside ``storage/``: the repository turns rows into ``digests`` values.

Every revision of a day is kept: ``day_revision`` + ``day_row`` hold each version's figures, and ``source_day``
points at the current one. Token counts are 64-bit (``BigInteger``); timestamps are stored in UTC.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, DateTime, ForeignKeyConstraint, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from digests.delivery import DeliveryState


class SourceDayRecord(SQLModel, table=True):
    __tablename__ = "source_day"

    day: date = Field(primary_key=True)
    revision: int = Field(description="The current revision of the day (1 = first stored).")


class DayRevisionRecord(SQLModel, table=True):
    __tablename__ = "day_revision"

    day: date = Field(primary_key=True)
    revision: int = Field(primary_key=True)
    as_of: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    other_tokens: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    source: str = Field(max_length=16)
    stored_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class DayRowRecord(SQLModel, table=True):
    __tablename__ = "day_row"
    __table_args__ = (
        ForeignKeyConstraint(["day", "revision"], ["day_revision.day", "day_revision.revision"], ondelete="CASCADE"),
    )

    day: date = Field(primary_key=True)
    revision: int = Field(primary_key=True)
    permaslug: str = Field(primary_key=True, max_length=255)
    rank: int
    tokens: int = Field(sa_column=Column(BigInteger, nullable=False))


class ModelRecord(SQLModel, table=True):
    __tablename__ = "model"

    permaslug: str = Field(primary_key=True, max_length=255)
    name: str
    author: str
    context_length: int | None = None
    prompt_price: float | None = None
    completion_price: float | None = None
    open_weights: bool | None = None
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class DestinationRecord(SQLModel, table=True):
    """Where rankbot publishes: synced from ``[[outputs]]`` at start, or managed from chat."""

    __tablename__ = "destination"

    name: str = Field(primary_key=True, max_length=100)
    kind: str = Field(max_length=16)
    origin: str = Field(max_length=16)
    target: str = Field(description="Kind-specific settings as JSON; never secrets.")
    subscription: str = Field(description="The Subscription as JSON.")
    enabled: bool = True
    disabled_reason: str | None = None
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    failures: int = Field(default=0, description="Tries that failed in a row since the last delivered one.")
    failing_since: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    last_error: str | None = None


class MessageRecord(SQLModel, table=True):
    """A digest or operator notice, rendered once when queued; its id is kind + period + revision."""

    __tablename__ = "message"

    id: str = Field(primary_key=True, max_length=100)
    kind: str = Field(max_length=16, index=True)
    first_day: date | None = None
    last_day: date | None = Field(default=None, index=True)
    revision: int
    title: str
    full: str = Field(description="Rendered payloads by format, as JSON.")
    line: str = Field(description="The quiet-day line by format, as JSON.")
    notable: bool
    fingerprint: str
    corrects: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


DUE_ROWS = f"state IN ('{DeliveryState.PENDING.value}', '{DeliveryState.FAILED.value}')"
"""Rows a worker may claim, as literal SQL: a partial index's condition, and the claim's own (with bound values
instead, PostgreSQL could not prove the claim matches the index)."""
HELD_ROWS = f"state = '{DeliveryState.SENDING.value}'"
SENT_ROWS = f"state = '{DeliveryState.SENT.value}'"


class OutboxRecord(SQLModel, table=True):
    """One (message, destination) delivery. The unique key is what makes a second queueing a no-op."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("message_id", "destination", name="uq_outbox_message_destination"),
        # Due rows in the order they are claimed, without sorting the backlog; rows being sent, by holder; each
        # destination's latest delivery.
        Index(
            "ix_outbox_due_at", "next_attempt_at", "id", sqlite_where=text(DUE_ROWS), postgresql_where=text(DUE_ROWS)
        ),
        Index("ix_outbox_held", "claimed_by", sqlite_where=text(HELD_ROWS), postgresql_where=text(HELD_ROWS)),
        Index(
            "ix_outbox_sent", "destination", "sent_at", sqlite_where=text(SENT_ROWS), postgresql_where=text(SENT_ROWS)
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(foreign_key="message.id", max_length=100)
    destination: str = Field(foreign_key="destination.name", max_length=100)
    variant: str = Field(max_length=8)
    state: str = Field(max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_error: str | None = None
    external_id: str | None = Field(default=None, max_length=255)
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class NoticeRecord(SQLModel, table=True):
    """An operator notice, raised once per key and resolved when its cause goes away."""

    __tablename__ = "notice"

    key: str = Field(primary_key=True, max_length=90)
    text: str
    raised_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    resolved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class ServiceStateRecord(SQLModel, table=True):
    """Small facts the service keeps between runs: the baseline day, the last successful poll."""

    __tablename__ = "service_state"

    key: str = Field(primary_key=True, max_length=64)
    value: str
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class AliasRecord(SQLModel, table=True):
    """An operator's link from an old permaslug to the new one after a rename."""

    __tablename__ = "alias"

    old_permaslug: str = Field(primary_key=True, max_length=255)
    new_permaslug: str = Field(max_length=255)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ChartRecord(SQLModel, table=True):
    """A digest's chart, rendered once (when it was published, or first asked for) and served from here."""

    __tablename__ = "chart"

    digest_id: str = Field(primary_key=True, max_length=100)
    name: str = Field(primary_key=True, max_length=100)
    png: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    alt: str
    width: int
    height: int
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class PaceRecord(SQLModel, table=True):
    """When the next message to a rate-limited destination (a Slack channel) may go, shared by every worker."""

    __tablename__ = "pace"

    key: str = Field(primary_key=True, max_length=200)
    next_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ChatRequestRecord(SQLModel, table=True):
    """A chat request already handled (Slack's ``trigger_id`` or ``event_id``): a retry of it does nothing again."""

    __tablename__ = "chat_request"

    key: str = Field(primary_key=True, max_length=200)
    seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))


class InstallRecord(SQLModel, table=True):
    """An app installed in a workspace through OAuth: the installation as JSON, encrypted (its tokens with it)."""

    __tablename__ = "chat_install"

    platform: str = Field(primary_key=True, max_length=16)
    enterprise_id: str = Field(primary_key=True, max_length=40, description="Empty outside Enterprise Grid.")
    team_id: str = Field(primary_key=True, max_length=40)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    installed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class OAuthStateRecord(SQLModel, table=True):
    """An OAuth ``state`` handed to a browser starting an install; good once, until it expires."""

    __tablename__ = "oauth_state"

    state: str = Field(primary_key=True, max_length=100)
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class SentPartRecord(SQLModel, table=True):
    """One message of a delivery that the destination took, recorded as soon as it was posted: a retry or a check
    after a crash knows what is there (and can read it back by id) without posting it again."""

    __tablename__ = "sent_part"

    delivery: str = Field(primary_key=True, max_length=300)
    part: int = Field(primary_key=True)
    remote_id: str = Field(max_length=100)
    sent_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class SubscriberRecord(SQLModel, table=True):
    """A newsletter subscriber: one row per address (``address_key``: the domain in lower case)."""

    __tablename__ = "subscriber"
    __table_args__ = (Index("ix_subscriber_state_id", "state", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=320)
    address_key: str = Field(max_length=320, unique=True)
    key: str = Field(max_length=64, unique=True)
    state: str = Field(max_length=16)
    cadence: str = Field(max_length=16)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    confirmed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    confirmed_ip: str | None = Field(default=None, max_length=64)
    state_changed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    soft_bounces: int = Field(default=0)


DUE_LETTERS = "state IN ('pending', 'deferred')"
HELD_LETTERS = "state = 'sending'"


class LetterRecord(SQLModel, table=True):
    """One email to one subscriber: a digest (``message_id`` = the digest's id), a confirmation or a welcome. The
    unique (message, subscriber) key is what makes a second fan-out of the same digest a no-op."""

    __tablename__ = "letter"
    __table_args__ = (
        UniqueConstraint("message_id", "subscriber_key", name="uq_letter_message_subscriber"),
        Index(
            "ix_letter_due_at",
            "next_attempt_at",
            "id",
            sqlite_where=text(DUE_LETTERS),
            postgresql_where=text(DUE_LETTERS),
        ),
        Index("ix_letter_message_state", "message_id", "state"),
        Index("ix_letter_held", "claimed_at", sqlite_where=text(HELD_LETTERS), postgresql_where=text(HELD_LETTERS)),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=120)
    subscriber_key: str = Field(max_length=64)
    kind: str = Field(max_length=10, description="digest, confirm or welcome.")
    state: str = Field(max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    last_error: str | None = None
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
