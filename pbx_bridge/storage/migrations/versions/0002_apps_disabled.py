"""Apps can be disabled (``pbx-bridge app disable``): SQLite ``user_version`` 2.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    op.add_column(
        "apps", sa.Column("disabled", sa.Integer, nullable=False, server_default=sa.text("0"))
    )
