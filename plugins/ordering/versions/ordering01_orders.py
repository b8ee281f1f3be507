"""The ordering plugin's orders.

Revision ID: ordering01
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ordering01"
down_revision = None
branch_labels = ("ordering",)
depends_on = "0001"

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite numbers only INTEGER PRIMARY KEY


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("appid", sa.String(16), nullable=False),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("trade_no", sa.String(64)),
        sa.Column("user_kind", sa.String(8), nullable=False),
        sa.Column("alipay_user", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("store", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("table_no", sa.String(32)),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("subtotal", sa.Integer(), nullable=False),
        sa.Column("packaging_fee", sa.Integer(), nullable=False),
        sa.Column("delivery_fee", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("alipay_sub_code", sa.String(64)),
        sa.Column("refund_request_no", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("out_trade_no", name="uq_orders_out_trade_no"),
        sa.UniqueConstraint("appid", "user_kind", "alipay_user", "idempotency_key",
                            name="uq_orders_appid_user_kind_alipay_user_idempotency_key"),
        sa.CheckConstraint("status IN ('created', 'paid', 'accepted', 'ready', 'completed', 'closed', 'refunded')",
                           name="ck_orders_status"),
        sa.CheckConstraint("total > 0", name="ck_orders_total"),
    )
    op.create_index("ix_orders_status_created_at", "orders", ["status", "created_at"])
    op.create_index("ix_orders_appid_user_kind_alipay_user", "orders", ["appid", "user_kind", "alipay_user"])


def downgrade() -> None:
    op.drop_table("orders")
