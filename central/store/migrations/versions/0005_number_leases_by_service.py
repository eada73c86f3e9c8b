"""number_leases by service and day: every online ticket looks up its service's leased blocks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("number_leases", schema=None) as batch_op:
        batch_op.create_index("ix_number_leases_service_day", ["service_id", "day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("number_leases", schema=None) as batch_op:
        batch_op.drop_index("ix_number_leases_service_day")
