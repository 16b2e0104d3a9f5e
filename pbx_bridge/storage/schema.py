"""The tables as the code queries them (the head of the migrations).

This is a description for building queries, not how the schema is made: the schema is
made and changed only by the versioned migrations in ``migrations/versions`` (a test
checks that both agree). Times are Unix seconds (float), as they always were.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)

__all__ = [
    "apps", "cache_versions", "events", "extensions", "metadata", "organizations",
    "recording_policies", "recordings", "tokens", "users", "webhook_deliveries",
    "webhook_subscriptions",
]

metadata = MetaData()

organizations = Table(
    "organizations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("code", Text, nullable=False, unique=True),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("organization", Integer, ForeignKey("organizations.id")),
)

extensions = Table(
    "extensions",
    metadata,
    Column("number", Text, primary_key=True),
    Column("owner", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("device", Text, nullable=False, unique=True),
    Column("recording_enabled", Integer, nullable=False),
    Column("recording_trigger", Text, nullable=False),
    Column("recording_format", Text, nullable=False),
    # The PBX node of the extension's device (revision 0008); NULL: the first node.
    Column("node", Text),
)

apps = Table(
    "apps",
    metadata,
    Column("client_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("disabled", Integer, nullable=False, server_default=text("0")),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column(
        "client_id", Text, ForeignKey("apps.client_id", ondelete="CASCADE"), nullable=False
    ),
    Column("created", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

# One row per cache that processes keep in memory ("directory": organizations, users,
# extensions, apps and tokens as the API reads them). Every write that can make such a
# cache wrong bumps its version in the same transaction; readers compare versions.
cache_versions = Table(
    "cache_versions",
    metadata,
    Column("name", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
)

# The recordings catalog (pbx_bridge/recordings/): one row per MixMonitor run. No foreign
# keys: a row outlives the directory entries it names (an extension removed later).
# What a run always has (text), then what is learnt as it goes and when its file is read.
_RECORDING_TEXT = ("call_id", "view_id", "channel", "format", "started_by", "paused", "state")
_RECORDING_LATER = (
    ("owner", Integer), ("file", Text), ("host_path", Text), ("app_id", Text),
    ("stopped", Float), ("duration", Float), ("size", BigInteger), ("sha256", Text),
    ("reason", Text),
    # The [[pbx]] node whose Asterisk recorded it (revision 0009; NULL: the first node).
    ("node", Text),
)
recordings = Table(
    "recordings",
    metadata,
    Column("id", Text, primary_key=True),
    Column("organization", Integer, index=True),
    Column("extension", Text, nullable=False, index=True),
    Column("started", Float, nullable=False, index=True),
    *(Column(name, Text, nullable=False) for name in _RECORDING_TEXT),
    *(Column(name, kind) for name, kind in _RECORDING_LATER),
)
# The list's own order for one extension, so a page is read from the index with no sort,
# and the phoneCallId filter (docs/performance.md, "Recordings": 100,000 rows).
Index("ix_recordings_extension_started", recordings.c.extension,
      recordings.c.started.desc(), recordings.c.id)
Index("ix_recordings_call_id", recordings.c.call_id)

# Each organization's recording policy (revision 0005): days its finished recordings are
# kept (NULL: for ever), whether its users may delete their own. No row: the defaults.
recording_policies = Table(
    "recording_policies",
    metadata,
    Column(
        "organization",
        Integer,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("retention_days", Integer),
    Column("users_may_delete", Integer, nullable=False, server_default=text("0")),
)

# Events (pbx_bridge/events/): the bounded history, by the per-bridge sequence (the event
# stream resumes from it). ``data`` is the event's JSON. No foreign keys, as recordings.
events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("id", Text, nullable=False, unique=True),
    Column("type", Text, nullable=False),
    Column("time", Float, nullable=False, index=True),
    Column("organization", Integer, index=True),
    Column("extension", Text),
    Column("data", Text, nullable=False),
    # What the event is, from what Asterisk sent (revision 0007): two replicas that hear
    # the same AMI event store it once.
    Column("key", Text),
    # The [[pbx]] node whose AMI events made it (revision 0009; NULL: the first node): a
    # node's restarted bridge reads back what it announced of that node's calls only.
    Column("node", Text),
)
Index("ix_events_key", events.c.key, unique=True)

# Webhook subscriptions (pbx_bridge/webhooks/): one receiver each; ``extension`` NULL =
# every extension of the organization. ``secret`` is the signing key (base64, shown once
# as whsec_...); ``types`` a JSON list.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("organization", Integer, nullable=False, index=True),
    Column("extension", Text, index=True),
    Column("url", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("types", Text, nullable=False),
    Column("active", Integer, nullable=False),
    Column("secret", Text, nullable=False),
    Column("created", Float, nullable=False),
    # The receiver's failed attempts in a row, and until when every sender leaves it
    # alone (revision 0007: the backoff shared by replicas).
    Column("failing", Integer, nullable=False, server_default=text("0")),
    Column("hold_until", Float),
)

# The outbox: one row per (event, subscription), written with the event, before any
# attempt; ``state`` pending -> delivered | dead.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
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
    # The sender that took the row and its lease (revision 0007; PostgreSQL only).
    Column("claimed_by", Text),
    Column("claimed_until", Float),
    Index("ix_webhook_deliveries_due", "subscription", "state", "next_at"),
)
