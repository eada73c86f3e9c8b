"""site: the admin's waiting target for staffing advice

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("staffing_target_s", sa.Integer(), server_default="300", nullable=False)
        )
        batch_op.add_column(sa.Column("staffing_percent", sa.Integer(), server_default="90", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.drop_column("staffing_percent")
        batch_op.drop_column("staffing_target_s")
