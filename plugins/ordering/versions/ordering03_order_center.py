"""The ordering plugin's order-centre sync state on each order (order_center.py): the
order's status when Alipay last accepted its sync (synced_status), the status whose
sync Alipay refused (sync_refused) and the refusal's sub_code (sync_error).

Revision ID: ordering03
Revises: ordering02
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ordering03"
down_revision = "ordering02"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("synced_status", sa.String(32)))
        batch.add_column(sa.Column("sync_refused", sa.String(32)))
        batch.add_column(sa.Column("sync_error", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("sync_error")
        batch.drop_column("sync_refused")
        batch.drop_column("synced_status")
