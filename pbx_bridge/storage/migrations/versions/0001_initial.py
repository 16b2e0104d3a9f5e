"""The directory, apps and tokens: the schema pbx-bridge kept as SQLite ``user_version`` 1.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False, unique=True),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("organization", sa.Integer, sa.ForeignKey("organizations.id")),
        sa.CheckConstraint("role IN ('user', 'organization', 'admin')", name="users_role"),
    )
    op.create_table(
        "extensions",
        sa.Column("number", sa.Text, primary_key=True),
        sa.Column("owner", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("device", sa.Text, nullable=False, unique=True),
        sa.Column("recording_enabled", sa.Integer, nullable=False),
        sa.Column("recording_trigger", sa.Text, nullable=False),
        sa.Column("recording_format", sa.Text, nullable=False),
    )
    op.create_index("extensions_owner", "extensions", ["owner"])
    op.create_table(
        "apps",
        sa.Column("client_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.Text, primary_key=True),
        sa.Column(
            "client_id",
            sa.Text,
            sa.ForeignKey("apps.client_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("tokens_expires_at", "tokens", ["expires_at"])
