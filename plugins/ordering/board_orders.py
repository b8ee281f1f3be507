"""What the order board reads: a store's orders from the database (never from a
process's memory, so every `mpforge serve` process behind one PostgreSQL shows the
same), and each order as the board's JSON.

A first read (no cursor) gives the store's orders of the China day plus any earlier one
still open (paid, accepted, ready). A later read passes the cursor the last one
answered and gets the orders changed since, with a few seconds of overlap: two
processes' clocks and a transaction that commits a moment after it stamped its row can
put a change slightly before the cursor, and the board replaces an order it has by id,
so reading one twice is harmless. Unpaid orders (created) are never shown: the
kitchen has nothing to do with them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from builder.serve.storage import Storage

# orders._order turns a row into an Order: used, not copied, so a column added there is read here too.
from .orders import ORDERS, TRANSITIONS, Order, Status, _order
from .pricing import CHINA, yuan_text

OVERLAP = timedelta(seconds=5)
OPEN = (Status.PAID, Status.ACCEPTED, Status.READY)
LIMIT = 500  # orders in one answer; a store's day has far fewer
# The board's buttons: the action in the URL -> the state it moves the order to.
ACTIONS: dict[str, Status] = {"accept": Status.ACCEPTED, "ready": Status.READY, "complete": Status.COMPLETED,
                              "refund": Status.REFUNDED}


def day_start(now: datetime) -> datetime:
    """Midnight of `now`'s China day."""
    return now.astimezone(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)


def store_orders(storage: Storage, appid: str, store: str, now: datetime, since: datetime | None) -> list[Order]:
    """The orders to show (see the module's docstring), oldest first."""
    query = select(ORDERS).where(ORDERS.c.appid == appid, ORDERS.c.store == store,
                                 ORDERS.c.status != Status.CREATED.value)
    if since is None:
        query = query.where(or_(ORDERS.c.created_at >= day_start(now),
                                ORDERS.c.status.in_([s.value for s in OPEN])))
    else:
        query = query.where(ORDERS.c.updated_at >= since - OVERLAP)
    with storage.engine.connect() as conn:
        rows = conn.execute(query.order_by(ORDERS.c.created_at, ORDERS.c.id).limit(LIMIT)).all()
    return [_order(row) for row in rows]


def actions(status: Status) -> list[str]:
    """The buttons an order in `status` gets: only the transitions allowed from it."""
    return [action for action, target in ACTIONS.items() if target in TRANSITIONS[status]]


def board_json(order: Order) -> dict[str, Any]:
    """An order as the board shows it (amounts in fen, and the total as yuan text)."""
    return {
        "id": order.out_trade_no, "status": order.status.value, "store": order.store, "mode": order.mode,
        "table": order.table_no,
        "lines": [{"name": line["name"], "quantity": line["quantity"], "amount": line["amount"],
                   "choices": [choice["name"] for choice in line["choices"]]} for line in order.lines],
        "total": order.total, "totalText": yuan_text(order.total),
        "createdAt": order.created_at.isoformat(), "paidAt": order.paid_at and order.paid_at.isoformat(),
        "updatedAt": order.updated_at.isoformat(), "actions": actions(order.status),
    }


def cursor_of(found: list[Order], since: datetime | None, now: datetime) -> str:
    """The cursor of the next read: the newest change seen, never earlier than the last
    cursor (the first read's: now)."""
    return max([order.updated_at for order in found] + [since or now]).isoformat()
