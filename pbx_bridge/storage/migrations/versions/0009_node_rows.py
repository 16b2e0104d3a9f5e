"""Several PBX nodes (issue 16): the node a recording row and an event came from, a
[[pbx]] name of the serve configuration. NULL (every row from before: only the first
node's link fed the catalog and the events then) is the first node, so nothing needs a
back-fill.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"


def upgrade() -> None:
    op.add_column("recordings", sa.Column("node", sa.Text))
    op.add_column("events", sa.Column("node", sa.Text))
