"""The first schema: users, claims, coupon counters, events.

Revision ID: 0001
Revises:
Create Date: 2026-03-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# As builder.serve.storage.ROW_ID: SQLite numbers rows only for INTEGER PRIMARY KEY.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("appid", sa.String(16), nullable=False),
        sa.Column("user_kind", sa.String(8), nullable=False),
        sa.Column("alipay_user", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("appid", "user_kind", "alipay_user", name="uq_users_appid_user_kind_alipay_user"),
    )
    op.create_table(
        "claims",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("appid", sa.String(16), nullable=False),
        sa.Column("coupon_id", sa.String(64), nullable=False),
        sa.Column("activity_id", sa.String(64), nullable=False),
        sa.Column("user_kind", sa.String(8), nullable=False),
        sa.Column("alipay_user", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("out_biz_no", sa.String(64), nullable=False),
        sa.Column("route", sa.String(8), nullable=False),
        sa.Column("ch_info", sa.String(128)),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("voucher_code", sa.String(64)),
        sa.Column("error", sa.String(32)),
        sa.Column("alipay_sub_code", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_claims"),
        sa.UniqueConstraint("out_biz_no", name="uq_claims_out_biz_no"),
        sa.UniqueConstraint("appid", "user_kind", "alipay_user", "idempotency_key",
                            name="uq_claims_appid_user_kind_alipay_user_idempotency_key"),
        sa.CheckConstraint("status IN ('pending', 'issued', 'failed')", name="ck_claims_status"),
        sa.CheckConstraint("route IN ('send', 'plugin')", name="ck_claims_route"),
    )
    op.create_index("ix_claims_appid_coupon_id_user_kind_alipay_user", "claims",
                    ["appid", "coupon_id", "user_kind", "alipay_user"])
    op.create_table(
        "coupon_counters",
        sa.Column("appid", sa.String(16), nullable=False),
        sa.Column("coupon_id", sa.String(64), nullable=False),
        sa.Column("taken", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("appid", "coupon_id", name="pk_coupon_counters"),
        sa.CheckConstraint("taken >= 0", name="ck_coupon_counters_taken"),
    )
    op.create_table(
        "events",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("appid", sa.String(16), nullable=False),
        sa.Column("user_kind", sa.String(8)),
        sa.Column("alipay_user", sa.String(128)),
        sa.Column("anonymous_id", sa.String(64)),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("scene", sa.String(16)),
        sa.Column("channel", sa.String(64)),
        sa.Column("entry_point", sa.String(64)),
        sa.Column("store", sa.String(64)),
        sa.Column("table_no", sa.String(32)),
        sa.Column("ch_info", sa.String(128)),
        sa.Column("page", sa.String(128)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_appid_at", "events", ["appid", "at"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("coupon_counters")
    op.drop_table("claims")
    op.drop_table("users")
