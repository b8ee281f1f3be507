"""events: an index by user (appid, user_kind, alipay_user, at), so that one user's
events are found without reading the app's (a segment coupon's claim tests one
customer's figures; GET and DELETE /me/data read and delete one user's events).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_appid_user_kind_alipay_user_at", "events", ["appid", "user_kind", "alipay_user", "at"])


def downgrade() -> None:
    op.drop_index("ix_events_appid_user_kind_alipay_user_at", table_name="events")
