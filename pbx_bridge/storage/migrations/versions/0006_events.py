"""Events and webhooks (pbx_bridge/events/, pbx_bridge/webhooks/): the bounded event
history by sequence, webhook subscriptions, and the delivery outbox (one row per event
and subscription, written before any attempt); the columns as storage/schema.py
describes them.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import BigInteger, Column, Float, Integer, Text

revision: str = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    op.create_table(
        "events",
        Column("seq", BigInteger, primary_key=True, autoincrement=False),
        Column("id", Text, nullable=False, unique=True),
        Column("type", Text, nullable=False),
        Column("time", Float, nullable=False, index=True),
        Column("organization", Integer, index=True),
        Column("extension", Text),
        Column("data", Text, nullable=False),
    )
    op.create_table(
        "webhook_subscriptions",
        Column("id", Text, primary_key=True),
        Column("organization", Integer, nullable=False, index=True),
        Column("extension", Text, index=True),
        Column("url", Text, nullable=False),
        Column("method", Text, nullable=False),
        Column("types", Text, nullable=False),
        Column("active", Integer, nullable=False),
        Column("secret", Text, nullable=False),
        Column("created", Float, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
               autoincrement=True),
        Column("event_seq", BigInteger, nullable=False, index=True),
        Column("subscription", Text, nullable=False),
        Column("state", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_at", Float, nullable=False),
        Column("created", Float, nullable=False),
        Column("finished", Float),
        Column("last_status", Integer),
        Column("last_error", Text),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["subscription", "state", "next_at"]
    )
