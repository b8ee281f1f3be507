"""The membership plugin's write transactions and the statements they share: a
transaction as the core's own writes open it, an INSERT that leaves an existing row
alone, a customer's rows, a customer's row locked, and the start of a China day (limits
count per day in China, whatever the server's time zone). Every module of the plugin
takes these from here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, select
from sqlalchemy.sql.dml import Insert

from builder.serve.content import CHINA
from builder.serve.storage import AlipayUser, Storage

from .tables import CUSTOMERS


@contextmanager
def write(storage: Storage) -> Iterator[Connection]:
    """A write transaction, Storage's own (`Storage.write`): committed at the end, rolled
    back on an exception; on SQLite it queues on the process's writer lock, then BEGIN
    IMMEDIATE takes the database's before the first read, as the core's writes do."""
    with storage.write() as conn:
        yield conn


def insert_ignoring_duplicates(storage: Storage, table: Table) -> Insert:
    """INSERT that does nothing when a unique key already has the row (Storage's own).
    Whether it inserted is told by `.returning(<id>)` answering a row."""
    return storage.insert_ignoring_duplicates(table)


def of_user(table: Table, appid: str, user: AlipayUser) -> ColumnElement[bool]:
    """The WHERE condition of a customer's rows of `table` (any table with appid,
    user_kind and alipay_user)."""
    return and_(table.c.appid == appid, table.c.user_kind == user.kind, table.c.alipay_user == user.id)


def locked_customer(conn: Connection, storage: Storage, appid: str, user: AlipayUser) -> Any:
    """The customer's membership row, made first when missing (no points, no stamps),
    locked until the transaction ends (FOR UPDATE is left out on SQLite, where BEGIN
    IMMEDIATE locked everything): their stamps and points change one request at a time."""
    query = select(CUSTOMERS).where(of_user(CUSTOMERS, appid, user)).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        now = storage.clock()
        conn.execute(insert_ignoring_duplicates(storage, CUSTOMERS).values(
            appid=appid, user_kind=user.kind, alipay_user=user.id, points=0, earned=0, stamps=0, cards_filled=0,
            created_at=now, updated_at=now))
        row = conn.execute(query).one()
    return row


def china_day_start(day: date) -> datetime:
    """Midnight at the start of `day` in China, an aware time."""
    return datetime.combine(day, time(0), tzinfo=CHINA)
