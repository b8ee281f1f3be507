"""The membership plugin's tables (Alembic branch `versions/`, membership01). Every row
names its app and, where it is a customer's, the customer as the core's tables do
(user_kind: user_id or open_id, alipay_user: the id). Only what the features need is
stored: no name, birthday or phone number; a member's mobile only as its SHA-256 (what
棋盘密云 matches crowds by), and only when the claim form asked for it.

* membership_customers: one row per customer who earned points or stamps, or holds the
  card: points now, points earned in all (the level), stamps on the current stamp card,
  the card's Alipay number (biz_card_no) once opened, and what Alipay's copy of the card
  last showed (card_points, card_level), so a change is pushed once (card.update).
* membership_ledger: every points change, unique per (app, reason, ref): an order, a
  stamp, the follow, a reward; the balance after it.
* membership_stamps: every stamp, unique per till code (nonce): a code is used once;
  `filled` when it filled a card (its reward coupon is owed).
* membership_cards: per app, the card template made from the spec's design (its
  design_digest says when the spec changed it), the setup's steps done (template_id,
  form_set_at, apply_card_url: the claim link) and the lease of the run doing them.
* membership_subscriptions: per customer and message template, the sends the customer
  allowed (one-time templates add one per acceptance).
* membership_messages: every message sent, refused or being sent, unique per (app, template,
  customer, ref): the same event never sends twice.
* membership_crowds: per app and segment, the 棋盘密云 crowd it was pushed to, and
  membership_crowd_users who is in it (by the id 棋盘 takes: OPEN_ID or SHA256_MOBILE),
  so the next push adds and removes only the difference.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

from builder.serve.storage import ROW_ID, UtcDateTime

METADATA = MetaData()
USER = ("user_kind", "alipay_user")

CUSTOMERS = Table(
    "membership_customers", METADATA,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("appid", String(16), nullable=False),
    Column("user_kind", String(8), nullable=False),
    Column("alipay_user", String(128), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("earned", BigInteger, nullable=False),  # points earned in all: the level
    Column("stamps", Integer, nullable=False),  # on the current stamp card
    Column("cards_filled", Integer, nullable=False),
    Column("biz_card_no", String(64)),  # Alipay's card number, once the card is opened
    Column("card_opened_at", UtcDateTime()),
    Column("mobile_sha256", String(64)),  # only when the claim form asked for the mobile
    Column("card_points", BigInteger),  # what Alipay's card shows, as last pushed
    Column("card_level", String(64)),
    Column("followed_at", UtcDateTime()),  # the follow's points were given
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("appid", *USER, name="uq_membership_customers_appid_user"),
)

LEDGER = Table(
    "membership_ledger", METADATA,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("appid", String(16), nullable=False),
    Column("user_kind", String(8), nullable=False),
    Column("alipay_user", String(128), nullable=False),
    Column("reason", String(16), nullable=False),  # order, stamp, follow, reward, refund
    Column("ref", String(64), nullable=False),
    Column("delta", BigInteger, nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("appid", "reason", "ref", name="uq_membership_ledger_appid_reason_ref"),
    Index("ix_membership_ledger_appid_user", "appid", *USER),
)

STAMPS = Table(
    "membership_stamps", METADATA,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("appid", String(16), nullable=False),
    Column("user_kind", String(8), nullable=False),
    Column("alipay_user", String(128), nullable=False),
    Column("nonce", String(32), nullable=False),
    Column("store", String(64)),
    Column("filled", Boolean, nullable=False),  # this stamp filled a card: its reward coupon is owed
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("appid", "nonce", name="uq_membership_stamps_appid_nonce"),
    Index("ix_membership_stamps_appid_user_created_at", "appid", *USER, "created_at"),
)

CARDS = Table(
    "membership_cards", METADATA,
    Column("appid", String(16), primary_key=True),
    # The setup's steps, each recorded when Alipay answered it (card_api.py): null
    # until template.create / formtemplate.set / activateurl.apply did.
    Column("template_id", String(64)),
    Column("design_digest", String(64)),  # the design the template shows (create or modify)
    Column("form_set_at", UtcDateTime()),
    Column("apply_card_url", Text),
    # The run setting the card up now (a lease: another run waits until it ends or expires).
    Column("setup_by", String(32)),
    Column("setup_until", UtcDateTime()),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

SUBSCRIPTIONS = Table(
    "membership_subscriptions", METADATA,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("appid", String(16), nullable=False),
    Column("user_kind", String(8), nullable=False),
    Column("alipay_user", String(128), nullable=False),
    Column("template_id", String(64), nullable=False),
    Column("allowed", Integer, nullable=False),  # sends left
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("appid", *USER, "template_id", name="uq_membership_subscriptions_appid_user_template"),
)

MESSAGES = Table(
    "membership_messages", METADATA,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("appid", String(16), nullable=False),
    Column("user_kind", String(8), nullable=False),
    Column("alipay_user", String(128), nullable=False),
    Column("template_id", String(64), nullable=False),
    Column("event", String(32), nullable=False),
    Column("ref", String(64), nullable=False),
    Column("status", String(8), nullable=False),  # sending (Alipay not answered yet, or never), sent, refused
    Column("alipay_sub_code", String(64)),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("appid", "template_id", *USER, "ref", name="uq_membership_messages_once"),
)

CROWDS = Table(
    "membership_crowds", METADATA,
    Column("appid", String(16), primary_key=True),
    Column("segment", String(64), primary_key=True),
    Column("crowd_code", String(64), nullable=False),
    Column("users", Integer, nullable=False),  # in the crowd after the last push
    Column("pushed_at", UtcDateTime(), nullable=False),
)

CROWD_USERS = Table(
    "membership_crowd_users", METADATA,
    Column("appid", String(16), primary_key=True),
    Column("segment", String(64), primary_key=True),
    Column("id_type", String(16), primary_key=True),  # OPEN_ID or SHA256_MOBILE
    Column("user_value", String(128), primary_key=True),
)
