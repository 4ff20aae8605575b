"""SQLModel tables. They stay inside ``storage/``: the repository turns rows into ``digests`` values.

Every revision of a day is kept: ``day_revision`` + ``day_row`` hold each version's figures, and ``source_day``
points at the current one. Token counts are 64-bit (``BigInteger``); timestamps are stored in UTC.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, DateTime, ForeignKeyConstraint
from sqlmodel import Field, SQLModel


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
