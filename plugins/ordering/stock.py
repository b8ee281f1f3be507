"""Limited stock of catalogue products (`stock:` in the spec): the units each product has
left, kept by the back end in `product_stock` (this plugin's Alembic branch), and what
each created order holds of them, in `stock_reservations`.

The spec's `stock` seeds the count the first time the product is ordered; from then on
the table is the truth, and a change of the spec's `stock` adds the difference (20 more
in the spec: 20 more units; fewer: units taken away). A restart with the same spec
refills nothing. The count may go below zero (the spec lowered under what unpaid orders
hold, a closed order paid after all): units still owed are kept, so orders closing later
do not hand out units that are gone; below zero, as at zero, nothing more is sold.

Every function here takes the connection of a transaction its caller holds, so that
reserving is one transaction with storing the order, and giving back is one with the
order's move to closed (orders.py):

* `reserve`: for each limited product of the order, a conditional
  ``UPDATE ... SET remaining = remaining - n WHERE remaining >= n`` whose row count says
  whether the units were there. The database decides, row by row, with no read before
  the write: two orders for the last unit cannot both get it (PostgreSQL locks the row
  for the UPDATE and re-checks the condition on the committed value; SQLite's writers
  take turns). What it took is written down as the order's reservations.
* `release`: gives an order's reservations back and deletes them, so a second release
  of the same order finds nothing to give.

Only a closed order (never paid) gives units back; a refunded one does not (what was
sold was made), and a paid order's reservations stay as the record of what it took.
* `retake`: a closed order paid after all (orders.py) takes its units again, whatever
  is left (the count may go below zero).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

METADATA = MetaData()
PRODUCT_STOCK = Table(
    "product_stock", METADATA,
    Column("appid", String(16), primary_key=True),
    Column("product", String(64), primary_key=True),
    Column("remaining", Integer, nullable=False),
    Column("spec_stock", Integer, nullable=False),  # the spec's count `remaining` follows
)
RESERVATIONS = Table(
    "stock_reservations", METADATA,
    Column("order_id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("product", String(64), primary_key=True),
    Column("quantity", Integer, nullable=False),
)


@dataclass(frozen=True)
class Short:
    """A product the order wants more of than is left."""

    product: str
    wanted: int


class SoldOut(Exception):
    """The order wants more of these products than are left; nothing was taken (the
    caller's transaction is rolled back by this exception)."""

    def __init__(self, short: Sequence[Short]) -> None:
        super().__init__(", ".join(f"{s.product} (wanted {s.wanted})" for s in short))
        self.short = tuple(short)


def _seed(conn: Connection, appid: str, product: str, stock: int) -> None:
    """The product's row with the spec's count, unless it has one (INSERT ... ON CONFLICT
    DO NOTHING: a concurrent first order waits for the other's row, then keeps it); a
    row following another spec count gets the difference, in the same UPDATE."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(PRODUCT_STOCK).values(appid=appid, product=product, remaining=stock, spec_stock=stock)
                 .on_conflict_do_nothing(index_elements=["appid", "product"]))
    c = PRODUCT_STOCK.c
    conn.execute(update(PRODUCT_STOCK).where(c.appid == appid, c.product == product, c.spec_stock != stock)
                 .values(remaining=c.remaining + (stock - c.spec_stock), spec_stock=stock))


def reserve(conn: Connection, appid: str, order_id: int, wanted: Mapping[str, int],
            stock: Mapping[str, int]) -> None:
    """Take `wanted` (product -> units) of the limited products (`stock`: product -> the
    spec's count, to seed with) for order `order_id`; products not in `stock` are
    unlimited. SoldOut naming every product short (nothing taken then, once the caller
    rolls back)."""
    short = []
    for product, units in sorted(wanted.items()):  # one order of locks: no deadlock between orders
        if product not in stock:
            continue
        _seed(conn, appid, product, stock[product])
        taken = conn.execute(update(PRODUCT_STOCK).where(
            PRODUCT_STOCK.c.appid == appid, PRODUCT_STOCK.c.product == product, PRODUCT_STOCK.c.remaining >= units)
            .values(remaining=PRODUCT_STOCK.c.remaining - units))
        if taken.rowcount != 1:
            short.append(Short(product, units))
            continue
        conn.execute(RESERVATIONS.insert().values(order_id=order_id, product=product, quantity=units))
    if short:
        raise SoldOut(short)


def release(conn: Connection, appid: str, order_id: int) -> dict[str, int]:
    """Give back what order `order_id` holds (product -> units), and forget it: a
    second call gives nothing."""
    held = {row.product: row.quantity for row in conn.execute(
        select(RESERVATIONS.c.product, RESERVATIONS.c.quantity).where(RESERVATIONS.c.order_id == order_id)
        .order_by(RESERVATIONS.c.product))}
    for product, units in held.items():
        conn.execute(update(PRODUCT_STOCK).where(PRODUCT_STOCK.c.appid == appid, PRODUCT_STOCK.c.product == product)
                     .values(remaining=PRODUCT_STOCK.c.remaining + units))
    conn.execute(delete(RESERVATIONS).where(RESERVATIONS.c.order_id == order_id))
    return held


def retake(conn: Connection, appid: str, order_id: int, units: Mapping[str, int]) -> None:
    """Take `units` (product -> units) again for order `order_id`, whatever is left:
    only of the products counted here (the limited ones it was ordered with)."""
    for product, wanted in sorted(units.items()):
        taken = conn.execute(update(PRODUCT_STOCK).where(PRODUCT_STOCK.c.appid == appid,
                                                         PRODUCT_STOCK.c.product == product)
                             .values(remaining=PRODUCT_STOCK.c.remaining - wanted))
        if taken.rowcount == 1:
            conn.execute(RESERVATIONS.insert().values(order_id=order_id, product=product, quantity=wanted))


def remaining(conn: Connection, appid: str, spec: Mapping[str, int] | None = None) -> dict[str, int]:
    """The units left of each product of `appid` ordered so far (product -> units); with
    `spec` (product -> the spec's count now), as the next order will find them."""
    spec = spec or {}
    c = PRODUCT_STOCK.c
    return {row.product: max(0, row.remaining + spec.get(row.product, row.spec_stock) - row.spec_stock)
            for row in conn.execute(select(c.product, c.remaining, c.spec_stock).where(c.appid == appid))}
