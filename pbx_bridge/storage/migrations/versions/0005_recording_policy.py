"""Each organization's recording policy (the directory's ``recordings`` of an
organization): how many days its finished recordings are kept (NULL: for ever) and
whether its users (``user`` context) may delete their own.

A table of its own, not columns of ``organizations``: the tables of revisions 0001/0002
stay exactly the pre-Alembic schema (the test that compares a fresh database with an
adopted pre-Alembic file covers them), and an organization without a row has the
defaults, so rows from before this revision need no back-fill on either backend.

Also two indexes the recordings list wants at 100,000 rows (docs/performance.md,
"Recordings"): one extension's rows in the list's order (extension, started DESC, id),
so a page is read from the index with no sort, and call_id for the phoneCallId filter.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    op.create_table(
        "recording_policies",
        sa.Column(
            "organization",
            sa.Integer,
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("retention_days", sa.Integer),
        sa.Column("users_may_delete", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_index(
        "ix_recordings_extension_started", "recordings",
        ["extension", sa.text("started DESC"), "id"],
    )
    op.create_index("ix_recordings_call_id", "recordings", ["call_id"])
