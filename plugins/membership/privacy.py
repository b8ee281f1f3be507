"""A customer's own membership records, for GET /api/v1/{appid}/me/data, and deleting
them, for DELETE (the core's builder.serve.user_data calls both through the plugin's
hooks; docs/privacy.md).

Shown: the customer row (points, points earned, stamps, cards filled, the card's Alipay
number, when the card was opened and the follow's points given, and whether a mobile
hash is stored: its value is not shown, being no use to the customer and, as an
unsalted SHA-256 of a mobile number, the one value here worth guarding), the points
ledger, the stamps, the subscription-message allowances and the messages sent.

Deleted: every row of the customer in the plugin's tables, and their entries in the
棋盘密云 crowds the merchant pushed (by open id, or by the mobile hash of their row). What
this cannot undo is Alipay's:

* a crowd already pushed to 棋盘密云 still holds them until the segment is pushed again,
  which sends the difference (crowduser.delete) and so removes them;
* an opened member card stays in the customer's Alipay card pack: Alipay's copy is the
  customer's to delete there (卡包 -> the card -> 删除), and it is no longer updated, as
  its number is gone from here. The back end does not call alipay.marketing.card.delete:
  the hook gets no Alipay client, and the customer may want the card's benefits in
  Alipay kept. docs/privacy.md tells the customer so.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, delete, or_, select

from builder.serve.storage import AlipayUser, Storage

from .tables import CROWD_USERS, CUSTOMERS, LEDGER, MESSAGES, STAMPS, SUBSCRIPTIONS

OPEN_ID = "OPEN_ID"  # the crowd id types 棋盘密云 takes (membership_crowd_users.id_type)
SHA256_MOBILE = "SHA256_MOBILE"


def _mine(table: Table, appid: str, user: AlipayUser) -> tuple[Any, ...]:
    return table.c.appid == appid, table.c.user_kind == user.kind, table.c.alipay_user == user.id


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _customer(conn: Connection, appid: str, user: AlipayUser) -> dict[str, Any] | None:
    row = conn.execute(select(CUSTOMERS).where(*_mine(CUSTOMERS, appid, user))).first()
    if row is None:
        return None
    return {"points": row.points, "earned": row.earned, "stamps": row.stamps, "cardsFilled": row.cards_filled,
            "cardNo": row.biz_card_no, "cardOpenedAt": _time(row.card_opened_at),
            "mobileHashStored": row.mobile_sha256 is not None, "followPointsAt": _time(row.followed_at),
            "createdAt": _time(row.created_at), "updatedAt": _time(row.updated_at)}


def user_data(storage: Storage, appid: str, user: AlipayUser) -> dict[str, Any]:
    """{"membership": the customer's records in the plugin's tables}."""
    with storage.engine.connect() as conn:
        customer = _customer(conn, appid, user)
        ledger = [{"reason": r.reason, "ref": r.ref, "delta": r.delta, "balance": r.balance,
                   "at": _time(r.created_at)}
                  for r in conn.execute(select(LEDGER).where(*_mine(LEDGER, appid, user))
                                        .order_by(LEDGER.c.created_at, LEDGER.c.id))]
        stamps = [{"store": r.store, "at": _time(r.created_at)}
                  for r in conn.execute(select(STAMPS).where(*_mine(STAMPS, appid, user))
                                        .order_by(STAMPS.c.created_at, STAMPS.c.id))]
        subscriptions = [{"template": r.template_id, "allowed": r.allowed, "updatedAt": _time(r.updated_at)}
                         for r in conn.execute(select(SUBSCRIPTIONS).where(*_mine(SUBSCRIPTIONS, appid, user))
                                               .order_by(SUBSCRIPTIONS.c.template_id))]
        messages = [{"template": r.template_id, "event": r.event, "ref": r.ref, "status": r.status,
                     "at": _time(r.created_at)}
                    for r in conn.execute(select(MESSAGES).where(*_mine(MESSAGES, appid, user))
                                          .order_by(MESSAGES.c.created_at, MESSAGES.c.id))]
    return {"membership": {"customer": customer, "ledger": ledger, "stamps": stamps,
                           "subscriptions": subscriptions, "messages": messages}}


def forget_user(storage: Storage, appid: str, user: AlipayUser) -> None:
    """Delete every row of the customer in the plugin's tables, in one transaction; safe
    to repeat (a second call finds nothing)."""
    with storage.engine.connect() as conn:
        conn.execution_options(write=True)  # SQLite: BEGIN IMMEDIATE, as Storage's own writes
        with conn.begin():
            mobile = conn.execute(select(CUSTOMERS.c.mobile_sha256)
                                  .where(*_mine(CUSTOMERS, appid, user))).scalar()
            # In a crowd by the ids 棋盘密云 takes: the open id (an open_id app's user id)
            # or the mobile hash the card's claim form gave.
            pushed_as = []
            if user.kind == "open_id":
                pushed_as.append((CROWD_USERS.c.id_type == OPEN_ID) & (CROWD_USERS.c.user_value == user.id))
            if mobile is not None:
                pushed_as.append((CROWD_USERS.c.id_type == SHA256_MOBILE) & (CROWD_USERS.c.user_value == mobile))
            if pushed_as:
                conn.execute(delete(CROWD_USERS).where(CROWD_USERS.c.appid == appid, or_(*pushed_as)))
            for table in (LEDGER, STAMPS, SUBSCRIPTIONS, MESSAGES, CUSTOMERS):
                conn.execute(delete(table).where(*_mine(table, appid, user)))
