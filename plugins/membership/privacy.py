"""A customer's own membership records, for GET /api/v1/{appid}/me/data, and deleting
them, for DELETE (the core's builder.serve.user_data calls both through the plugin's
hooks; docs/privacy.md).

Shown: the customer row (points, points earned, stamps, cards filled, the card's Alipay
number, when the card was opened and the follow's points given, and whether a mobile
hash is stored: its value is not shown, being no use to the customer and, as an
unsalted SHA-256 of a mobile number, the one value here worth guarding), the points
ledger, the stamps, the subscription-message allowances and the messages sent.

Deleted: every row of the customer in the plugin's tables but one kind: their entries
in the 棋盘密云 crowds the merchant pushed (membership_crowd_users, by open id or mobile
hash) stay until the segment is pushed again. That push sends Alipay the difference
between what the crowd holds and who is in the segment now (crowds.py): the forgotten
customer is in the first and not the second, so crowduser.delete removes them at Alipay
and then the row here. Deleting the row now would leave them in Alipay's crowd for good
(the hook has no Alipay client to remove them at once). What this cannot undo is
Alipay's:

* a crowd already pushed to 棋盘密云 still holds them until the segment is pushed again
  (above);
* an opened member card stays in the customer's Alipay card pack: Alipay's copy is the
  customer's to delete there (卡包 -> the card -> 删除), and it is no longer updated, as
  its number is gone from here. The back end does not call alipay.marketing.card.delete:
  the hook gets no Alipay client, and the customer may want the card's benefits in
  Alipay kept. docs/privacy.md tells the customer so.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select

from builder.serve.storage import AlipayUser, Storage

from .tables import CUSTOMERS, LEDGER, MESSAGES, STAMPS, SUBSCRIPTIONS
from .writes import of_user, write

OPEN_ID = "OPEN_ID"  # the crowd id types 棋盘密云 takes (membership_crowd_users.id_type)
SHA256_MOBILE = "SHA256_MOBILE"


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _customer(conn: Connection, appid: str, user: AlipayUser) -> dict[str, Any] | None:
    row = conn.execute(select(CUSTOMERS).where(of_user(CUSTOMERS, appid, user))).first()
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
                  for r in conn.execute(select(LEDGER).where(of_user(LEDGER, appid, user))
                                        .order_by(LEDGER.c.created_at, LEDGER.c.id))]
        stamps = [{"store": r.store, "at": _time(r.created_at)}
                  for r in conn.execute(select(STAMPS).where(of_user(STAMPS, appid, user))
                                        .order_by(STAMPS.c.created_at, STAMPS.c.id))]
        subscriptions = [{"template": r.template_id, "allowed": r.allowed, "updatedAt": _time(r.updated_at)}
                         for r in conn.execute(select(SUBSCRIPTIONS).where(of_user(SUBSCRIPTIONS, appid, user))
                                               .order_by(SUBSCRIPTIONS.c.template_id))]
        messages = [{"template": r.template_id, "event": r.event, "ref": r.ref, "status": r.status,
                     "at": _time(r.created_at)}
                    for r in conn.execute(select(MESSAGES).where(of_user(MESSAGES, appid, user))
                                          .order_by(MESSAGES.c.created_at, MESSAGES.c.id))]
    return {"membership": {"customer": customer, "ledger": ledger, "stamps": stamps,
                           "subscriptions": subscriptions, "messages": messages}}


def forget_user(storage: Storage, appid: str, user: AlipayUser) -> None:
    """Delete every row of the customer in the plugin's tables, in one transaction; safe
    to repeat (a second call finds nothing)."""
    with write(storage) as conn:
        # Crowd entries stay: the next push removes them at Alipay (above).
        for table in (LEDGER, STAMPS, SUBSCRIPTIONS, MESSAGES, CUSTOMERS):
            conn.execute(delete(table).where(of_user(table, appid, user)))
