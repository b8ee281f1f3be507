"""The ordering plugin's stock: each limited product's remaining units, and what each
created order holds of them.

Revision ID: ordering02
Revises: ordering01
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ordering02"
down_revision = "ordering01"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as orders.id


def upgrade() -> None:
    op.create_table(
        "product_stock",
        sa.Column("appid", sa.String(16), nullable=False),
        sa.Column("product", sa.String(64), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("spec_stock", sa.Integer(), nullable=False),  # the spec's count `remaining` follows
        sa.PrimaryKeyConstraint("appid", "product", name="pk_product_stock"),
    )
    op.create_table(
        "stock_reservations",
        sa.Column("order_id", ROW_ID, nullable=False),
        sa.Column("product", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "product", name="pk_stock_reservations"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_stock_reservations_order_id_orders"),
        sa.CheckConstraint("quantity > 0", name="ck_stock_reservations_quantity"),
    )


def downgrade() -> None:
    op.drop_table("stock_reservations")
    op.drop_table("product_stock")
