"""Orders in the database: the `orders` table (this plugin's Alembic branch, `versions/`)
and every read and change of it. Each change is one transaction, and moves an order only
along an allowed transition (`TRANSITIONS`); the row is locked first (PostgreSQL:
SELECT ... FOR UPDATE; SQLite: BEGIN IMMEDIATE takes the write lock before the read), so
two notifications of one payment change it once.

Limited stock (stock.py) is reserved in the transaction that stores the order, and given
back in the one that moves it to closed: an order closes once, so it gives back once.

    created --(payment verified)--> paid --> accepted --> ready --> completed
    created --(trade refused or closed)--> closed
    closed --(payment verified)--> paid
    paid, accepted, ready, completed --(refund)--> refunded

A verified payment is never turned away: Alipay has the buyer's money, so an order
closed meanwhile (a trade paid from the buyer's bill list as it was being closed) is
paid after all, takes its stock again (even past zero: it was sold) and shows on the
order board, to make or to refund.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    cast,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from builder.serve.storage import ROW_ID, AlipayUser, Storage, UtcDateTime

from . import stock
from .pricing import Priced


class Status(str, enum.Enum):
    CREATED = "created"  # stored; the trade created or being created; not paid
    PAID = "paid"  # a verified notification or trade.query said TRADE_SUCCESS / TRADE_FINISHED
    ACCEPTED = "accepted"  # the shop took it
    READY = "ready"  # ready to pick up or serve
    COMPLETED = "completed"
    CLOSED = "closed"  # never paid: Alipay refused the trade, or closed it unpaid
    REFUNDED = "refunded"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.PAID, Status.CLOSED}),
    Status.PAID: frozenset({Status.ACCEPTED, Status.REFUNDED}),
    Status.ACCEPTED: frozenset({Status.READY, Status.REFUNDED}),
    Status.READY: frozenset({Status.COMPLETED, Status.REFUNDED}),
    Status.COMPLETED: frozenset({Status.REFUNDED}),
    Status.CLOSED: frozenset({Status.PAID}),  # Alipay took the money after all (see above)
    Status.REFUNDED: frozenset(),
}

# A forgotten user's orders (forget_user): this kind, and "order:<id>" as the user.
FORGOTTEN_KIND = "deleted"

METADATA = MetaData()
ORDERS = Table(
    "orders", METADATA,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("appid", String(16), nullable=False),
    Column("out_trade_no", String(64), nullable=False, unique=True),
    Column("trade_no", String(64)),
    Column("user_kind", String(8), nullable=False),
    Column("alipay_user", String(128), nullable=False),
    Column("idempotency_key", String(64), nullable=False),
    # The hash of what the client asked: a replayed key must ask the same.
    Column("request_digest", String(64), nullable=False),
    Column("store", String(64), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("table_no", String(32)),
    Column("lines", Text, nullable=False),  # JSON: the priced lines
    Column("subtotal", Integer, nullable=False),  # fen, as every amount here
    Column("packaging_fee", Integer, nullable=False),
    Column("delivery_fee", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("alipay_sub_code", String(64)),  # why Alipay refused the trade, for a closed order
    Column("refund_request_no", String(64)),  # the refund's out_request_no, stored before Alipay is asked
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("paid_at", UtcDateTime()),
    # Alipay's order centre (order_center.py): the order's status when Alipay last accepted
    # its sync, the status whose sync Alipay refused, and the refusal's sub_code.
    Column("synced_status", String(32)),
    Column("sync_refused", String(32)),
    Column("sync_error", String(64)),
    UniqueConstraint("appid", "user_kind", "alipay_user", "idempotency_key"),
    CheckConstraint("total > 0", name="total"),
    Index(None, "status", "created_at"),
)


class IllegalTransition(Exception):
    def __init__(self, current: Status, wanted: Status) -> None:
        super().__init__(f"an order {current.value} cannot become {wanted.value}")
        self.current, self.wanted = current, wanted


@dataclass(frozen=True)
class Order:
    id: int
    appid: str
    out_trade_no: str
    trade_no: str | None
    user: AlipayUser
    idempotency_key: str
    request_digest: str
    store: str
    mode: str
    table_no: str | None
    lines: list[dict[str, Any]]
    subtotal: int
    packaging_fee: int
    delivery_fee: int
    total: int
    status: Status
    alipay_sub_code: str | None
    refund_request_no: str | None
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None
    # Alipay's order centre (order_center.py): the order's status when Alipay last accepted
    # its sync, the status whose sync Alipay refused, and the refusal's sub_code.
    synced_status: Status | None = None
    sync_refused: Status | None = None
    sync_error: str | None = None


def _status(value: str | None) -> Status | None:
    return None if value is None else Status(value)


def _order(row: Any) -> Order:
    m = dict(row._mapping)
    return Order(id=m["id"], appid=m["appid"], out_trade_no=m["out_trade_no"], trade_no=m["trade_no"],
                 user=AlipayUser(m["user_kind"], m["alipay_user"]), idempotency_key=m["idempotency_key"],
                 request_digest=m["request_digest"], store=m["store"], mode=m["mode"], table_no=m["table_no"],
                 lines=json.loads(m["lines"]), subtotal=m["subtotal"], packaging_fee=m["packaging_fee"],
                 delivery_fee=m["delivery_fee"], total=m["total"], status=Status(m["status"]),
                 alipay_sub_code=m["alipay_sub_code"], refund_request_no=m["refund_request_no"],
                 created_at=m["created_at"], updated_at=m["updated_at"], paid_at=m["paid_at"],
                 synced_status=_status(m["synced_status"]), sync_refused=_status(m["sync_refused"]),
                 sync_error=m["sync_error"])


def _lines(priced: Priced) -> str:
    return json.dumps([{"product": line.product, "name": line.name, "quantity": line.quantity,
                        "choices": [{"option": c.option, "choice": c.choice, "name": c.name, "price": c.price}
                                    for c in line.choices],
                        "unitPrice": line.unit_price, "amount": line.amount} for line in priced.lines],
                      ensure_ascii=False)


@contextmanager
def _write(storage: Storage) -> Iterator[Connection]:
    """A write transaction (SQLite: BEGIN IMMEDIATE, as Storage's own writes)."""
    with storage.engine.connect() as conn:
        conn.execution_options(write=True)
        with conn.begin():
            yield conn


@dataclass(frozen=True)
class NewOrder:
    appid: str
    out_trade_no: str
    user: AlipayUser
    idempotency_key: str
    request_digest: str
    table_no: str | None
    priced: Priced
    # The spec's stock of each limited product (product id -> units), which seeds its
    # count the first time it is ordered; products not here are unlimited.
    stock: Mapping[str, int] = field(default_factory=dict)

    def wanted(self) -> dict[str, int]:
        """Units of each product the order takes (a product may be on several lines)."""
        units: Counter[str] = Counter()
        for line in self.priced.lines:
            units[line.product] += line.quantity
        return dict(units)


def add_order(storage: Storage, new: NewOrder) -> tuple[Order, bool]:
    """Store a created order and reserve its limited products' units, in one
    transaction: (the order, True); or, when the user already sent this
    Idempotency-Key, (that order, False) untouched. stock.SoldOut when a product has too
    few units left: nothing stored, nothing taken."""
    now = storage.clock()
    p = new.priced
    try:
        with _write(storage) as conn:
            earlier = _by_key(conn, new.appid, new.user, new.idempotency_key)
            if earlier is not None:
                return earlier, False
            conn.execute(ORDERS.insert().values(
                appid=new.appid, out_trade_no=new.out_trade_no, user_kind=new.user.kind, alipay_user=new.user.id,
                idempotency_key=new.idempotency_key, request_digest=new.request_digest, store=p.store, mode=p.mode,
                table_no=new.table_no, lines=_lines(p), subtotal=p.subtotal, packaging_fee=p.packaging_fee,
                delivery_fee=p.delivery_fee, total=p.total, status=Status.CREATED.value, created_at=now,
                updated_at=now))
            order = _one(conn, ORDERS.c.out_trade_no == new.out_trade_no)
            stock.reserve(conn, new.appid, order.id, new.wanted(), new.stock)
            return order, True
    except IntegrityError:
        # PostgreSQL: a concurrent request with the same key committed first.
        found = find_by_key(storage, new.appid, new.user, new.idempotency_key)
        if found is None:
            raise
        return found, False


def _one(conn: Connection, where: Any, *, lock: bool = False) -> Order:
    query = select(ORDERS).where(where)
    return _order(conn.execute(query.with_for_update() if lock else query).one())


def _by_key(conn: Connection, appid: str, user: AlipayUser, key: str) -> Order | None:
    row = conn.execute(select(ORDERS).where(
        ORDERS.c.appid == appid, ORDERS.c.user_kind == user.kind, ORDERS.c.alipay_user == user.id,
        ORDERS.c.idempotency_key == key)).one_or_none()
    return None if row is None else _order(row)


def find_by_key(storage: Storage, appid: str, user: AlipayUser, key: str) -> Order | None:
    with storage.engine.connect() as conn:
        return _by_key(conn, appid, user, key)


def find(storage: Storage, appid: str, out_trade_no: str) -> Order | None:
    with storage.engine.connect() as conn:
        row = conn.execute(select(ORDERS).where(ORDERS.c.appid == appid,
                                                ORDERS.c.out_trade_no == out_trade_no)).one_or_none()
    return None if row is None else _order(row)


def users_orders(storage: Storage, appid: str, user: AlipayUser, limit: int | None = 50) -> list[Order]:
    """The user's orders, newest first (None: all of them)."""
    with storage.engine.connect() as conn:
        rows = conn.execute(select(ORDERS).where(
            ORDERS.c.appid == appid, ORDERS.c.user_kind == user.kind, ORDERS.c.alipay_user == user.id)
            .order_by(ORDERS.c.created_at.desc(), ORDERS.c.id.desc()).limit(limit)).all()
    return [_order(row) for row in rows]


def forget_user(storage: Storage, appid: str, user: AlipayUser) -> None:
    """Remove the user's identity from their orders, in one transaction; safe to repeat.

    Every order is kept: a paid or refunded one is the merchant's record of money taken
    and given back (its accounts, Alipay's bill, a refund still to make), and an unpaid
    one may still be paid in Alipay's cashier until `reconcile` closes its trade, which
    it does by out_trade_no, as it does any order. The user becomes FORGOTTEN_KIND and
    "order:<id>", unique per order, so (appid, user_kind, alipay_user, idempotency_key)
    stays unique however many forgotten orders share a key. What is left says what was
    sold, where and when, not to whom."""
    with _write(storage) as conn:
        conn.execute(update(ORDERS).where(
            ORDERS.c.appid == appid, ORDERS.c.user_kind == user.kind, ORDERS.c.alipay_user == user.id)
            .values(user_kind=FORGOTTEN_KIND, alipay_user=literal("order:") + cast(ORDERS.c.id, String)))


def unpaid_before(storage: Storage, appid: str, created_before: datetime) -> list[Order]:
    """`appid`'s orders still created (with a trade or not) that were created before
    `created_before`, oldest first."""
    with storage.engine.connect() as conn:
        rows = conn.execute(select(ORDERS).where(
            ORDERS.c.appid == appid, ORDERS.c.status == Status.CREATED.value, ORDERS.c.created_at < created_before)
            .order_by(ORDERS.c.created_at, ORDERS.c.id)).all()
    return [_order(row) for row in rows]


def to_sync(storage: Storage, appid: str, statuses: Collection[Status], limit: int) -> list[Order]:
    """Up to `limit` of `appid`'s orders with a trade, in one of `statuses`, whose
    current status has been neither synced to Alipay's order centre nor refused by it
    (order_center.py), least recently changed first."""
    values = [status.value for status in statuses]
    with storage.engine.connect() as conn:
        rows = conn.execute(select(ORDERS).where(
            ORDERS.c.appid == appid, ORDERS.c.status.in_(values), ORDERS.c.trade_no.is_not(None),
            ORDERS.c.user_kind != FORGOTTEN_KIND,  # no buyer to send; the buyer's copy is theirs
            or_(ORDERS.c.synced_status.is_(None), ORDERS.c.synced_status != ORDERS.c.status),
            or_(ORDERS.c.sync_refused.is_(None), ORDERS.c.sync_refused != ORDERS.c.status))
            .order_by(ORDERS.c.updated_at, ORDERS.c.id).limit(limit)).all()
    return [_order(row) for row in rows]


def record_sync(storage: Storage, order_id: int, status: Status, refused: str | None = None) -> None:
    """Keep what Alipay's order centre said of the order's sync in `status`: up to date
    (`refused` None; an earlier refusal is then forgotten), or refused with that
    sub_code. A refusal in a status already synced (a second run repeating it) is not
    kept. Never changes the order's status."""
    where = [ORDERS.c.id == order_id]
    if refused is None:
        values: dict[str, Any] = {"synced_status": status.value, "sync_refused": None, "sync_error": None}
    else:
        values = {"sync_refused": status.value, "sync_error": refused[:64]}
        where.append(or_(ORDERS.c.synced_status.is_(None), ORDERS.c.synced_status != status.value))
    with _write(storage) as conn:
        conn.execute(update(ORDERS).where(*where).values(**values))


def remaining_stock(storage: Storage, appid: str, spec: Mapping[str, int] | None = None) -> dict[str, int]:
    """The units left of each limited product of `appid` ordered so far (with `spec`, the
    spec's counts now: as the next order finds them)."""
    with storage.engine.connect() as conn:
        return stock.remaining(conn, appid, spec)


def _units(order: Order) -> dict[str, int]:
    """Product -> the units the order's lines hold."""
    units: Counter[str] = Counter()
    for line in order.lines:
        units[line["product"]] += int(line["quantity"])
    return dict(units)


def set_trade_no(storage: Storage, order: Order, trade_no: str) -> Order:
    with _write(storage) as conn:
        conn.execute(update(ORDERS).where(ORDERS.c.id == order.id, ORDERS.c.trade_no.is_(None))
                     .values(trade_no=trade_no, updated_at=storage.clock()))
        return _one(conn, ORDERS.c.id == order.id)


def set_refund_request_no(storage: Storage, order: Order, out_request_no: str) -> Order:
    """Keep the refund's out_request_no before Alipay is asked, so a retry repeats it."""
    with _write(storage) as conn:
        conn.execute(update(ORDERS).where(ORDERS.c.id == order.id, ORDERS.c.refund_request_no.is_(None))
                     .values(refund_request_no=out_request_no, updated_at=storage.clock()))
        return _one(conn, ORDERS.c.id == order.id)


def transition(storage: Storage, order_id: int, wanted: Status, *, already: frozenset[Status] = frozenset(),
               alipay_sub_code: str | None = None) -> tuple[Order, bool]:
    """Move the order to `wanted` in one transaction: (the order, True); an order that
    becomes closed gives its reserved stock back in the same transaction. When it is
    already `wanted` or in one of `already` (a later state that implies it), nothing
    changes: (the order, False). Any other state: IllegalTransition."""
    with _write(storage) as conn:
        current = _one(conn, ORDERS.c.id == order_id, lock=True)
        if current.status == wanted or current.status in already:
            return current, False
        if wanted not in TRANSITIONS[current.status]:
            raise IllegalTransition(current.status, wanted)
        now = storage.clock()
        values: dict[str, Any] = {"status": wanted.value, "updated_at": now}
        if wanted == Status.PAID:
            values["paid_at"] = now
        if alipay_sub_code is not None:
            values["alipay_sub_code"] = alipay_sub_code
        conn.execute(update(ORDERS).where(ORDERS.c.id == order_id).values(**values))
        if wanted == Status.CLOSED:
            stock.release(conn, current.appid, order_id)
        elif current.status == Status.CLOSED:  # paid after all: it takes its units again
            stock.retake(conn, current.appid, order_id, _units(current))
        return _one(conn, ORDERS.c.id == order_id), True


# A payment is settled once the order is paid or any state after it.
AFTER_PAYMENT = frozenset({Status.ACCEPTED, Status.READY, Status.COMPLETED, Status.REFUNDED})
