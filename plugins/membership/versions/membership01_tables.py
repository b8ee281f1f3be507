"""The membership plugin's tables (plugins/membership/tables.py says what each holds).

Revision ID: membership01
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "membership01"
down_revision = None
branch_labels = ("membership",)
depends_on = "0001"

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite numbers only INTEGER PRIMARY KEY


def upgrade() -> None:
    op.create_table(
        "membership_cards",
        sa.Column("appid", sa.String(16)),
        sa.Column("template_id", sa.String(64)),
        sa.Column("design_digest", sa.String(64)),
        sa.Column("form_set_at", sa.DateTime(timezone=True)),
        sa.Column("apply_card_url", sa.Text()),
        sa.Column("setup_by", sa.String(32)),
        sa.Column("setup_until", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("appid", name="pk_membership_cards"),
    )
    op.create_table(
        "membership_crowd_users",
        sa.Column("appid", sa.String(16)),
        sa.Column("segment", sa.String(64)),
        sa.Column("id_type", sa.String(16)),
        sa.Column("user_value", sa.String(128)),
        sa.PrimaryKeyConstraint("appid", "segment", "id_type", "user_value", name="pk_membership_crowd_users"),
    )
    op.create_table(
        "membership_crowds",
        sa.Column("appid", sa.String(16)),
        sa.Column("segment", sa.String(64)),
        sa.Column("crowd_code", sa.String(64), nullable=False),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("appid", "segment", name="pk_membership_crowds"),
    )
    op.create_table(
        "membership_customers",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("appid", sa.String(16), nullable=False),
        sa.Column("user_kind", sa.String(8), nullable=False),
        sa.Column("alipay_user", sa.String(128), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("earned", sa.BigInteger(), nullable=False),
        sa.Column("stamps", sa.Integer(), nullable=False),
        sa.Column("cards_filled", sa.Integer(), nullable=False),
        sa.Column("biz_card_no", sa.String(64)),
        sa.Column("card_opened_at", sa.DateTime(timezone=True)),
        sa.Column("mobile_sha256", sa.String(64)),
        sa.Column("card_points", sa.BigInteger()),
        sa.Column("card_level", sa.String(64)),
        sa.Column("followed_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_membership_customers"),
        sa.UniqueConstraint("appid", "user_kind", "alipay_user", name="uq_membership_customers_appid_user"),
    )
    op.create_table(
        "membership_ledger",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("appid", sa.String(16), nullable=False),
        sa.Column("user_kind", sa.String(8), nullable=False),
        sa.Column("alipay_user", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_membership_ledger"),
        sa.UniqueConstraint("appid", "reason", "ref", name="uq_membership_ledger_appid_reason_ref"),
    )
    op.create_table(
        "membership_messages",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("appid", sa.String(16), nullable=False),
        sa.Column("user_kind", sa.String(8), nullable=False),
        sa.Column("alipay_user", sa.String(128), nullable=False),
        sa.Column("template_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("alipay_sub_code", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_membership_messages"),
        sa.UniqueConstraint("appid", "template_id", "user_kind", "alipay_user", "ref",
                            name="uq_membership_messages_once"),
    )
    op.create_table(
        "membership_stamps",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("appid", sa.String(16), nullable=False),
        sa.Column("user_kind", sa.String(8), nullable=False),
        sa.Column("alipay_user", sa.String(128), nullable=False),
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("store", sa.String(64)),
        sa.Column("filled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_membership_stamps"),
        sa.UniqueConstraint("appid", "nonce", name="uq_membership_stamps_appid_nonce"),
    )
    op.create_table(
        "membership_subscriptions",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("appid", sa.String(16), nullable=False),
        sa.Column("user_kind", sa.String(8), nullable=False),
        sa.Column("alipay_user", sa.String(128), nullable=False),
        sa.Column("template_id", sa.String(64), nullable=False),
        sa.Column("allowed", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_membership_subscriptions"),
        sa.UniqueConstraint("appid", "user_kind", "alipay_user", "template_id",
                            name="uq_membership_subscriptions_appid_user_template"),
    )
    op.create_index("ix_membership_ledger_appid_user", "membership_ledger", ["appid", "user_kind", "alipay_user"])
    op.create_index("ix_membership_stamps_appid_user_created_at", "membership_stamps",
                    ["appid", "user_kind", "alipay_user", "created_at"])


def downgrade() -> None:
    op.drop_table("membership_subscriptions")
    op.drop_table("membership_stamps")
    op.drop_table("membership_messages")
    op.drop_table("membership_ledger")
    op.drop_table("membership_customers")
    op.drop_table("membership_crowds")
    op.drop_table("membership_crowd_users")
    op.drop_table("membership_cards")
