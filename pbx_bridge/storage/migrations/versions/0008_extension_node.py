"""Several PBX nodes (issue 16): the node an extension's device lives on, a [[pbx]]
name of the serve configuration; NULL (every row from before) is the first node, so
nothing needs a back-fill.

Revision ID: 0008
Revises: 0006 (the lead rechains it onto 0007 when merging)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"


def upgrade() -> None:
    op.add_column("extensions", sa.Column("node", sa.Text))
