"""Events and webhooks shared by bridge replicas (docs/design.md, "Replicas: events and
webhooks"):

- ``events.key``: what the event is, derived from what Asterisk sent (the call's
  Linkedid, the view's first channel, the recording's channel and start), so that two
  bridges that hear the same AMI event store it once (unique; rows from before this
  revision keep their id as key).
- ``webhook_deliveries.claimed_by`` / ``claimed_until``: the sender that took the row
  and until when (a lease: a killed sender's rows return to the pool when it ends).
- ``webhook_subscriptions.failing`` / ``hold_until``: the receiver's failed attempts in
  a row and until when every sender leaves it alone (the backoff, shared).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    op.add_column("events", sa.Column("key", sa.Text))
    op.execute("UPDATE events SET key = id")
    op.create_index("ix_events_key", "events", ["key"], unique=True)
    op.add_column("webhook_deliveries", sa.Column("claimed_by", sa.Text))
    op.add_column("webhook_deliveries", sa.Column("claimed_until", sa.Float))
    op.add_column(
        "webhook_subscriptions",
        sa.Column("failing", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.add_column("webhook_subscriptions", sa.Column("hold_until", sa.Float))
