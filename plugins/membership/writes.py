"""The membership plugin's write transactions and the statements they share: a
transaction as the core's own writes open it, an INSERT that leaves an existing row
alone, a customer's row locked, and the start of a China day (limits count per day in
China, whatever the server's time zone)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from builder.serve.content import CHINA
from builder.serve.storage import POSTGRESQL_PREFIX, AlipayUser, Storage

from .tables import CUSTOMERS


@contextmanager
def write(storage: Storage) -> Iterator[Connection]:
    """A write transaction: committed at the end, rolled back on an exception (SQLite:
    BEGIN IMMEDIATE, which takes the write lock before the first read, as Storage's own
    writes do)."""
    with storage.engine.connect() as conn:
        conn.execution_options(write=True)
        with conn.begin():
            yield conn


def insert_ignoring_duplicates(storage: Storage, table: Table) -> Insert:
    """INSERT that does nothing when a unique key already has the row. Whether it
    inserted is told by `.returning(<id>)` answering a row: psycopg's rowcount does
    not say it."""
    if storage.dialect == POSTGRESQL_PREFIX:
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def whose(table: Table, appid: str, user: AlipayUser) -> list[Any]:
    """The WHERE clauses of a customer's rows of `table`."""
    return [table.c.appid == appid, table.c.user_kind == user.kind, table.c.alipay_user == user.id]


def locked_customer(storage: Storage, conn: Connection, appid: str, user: AlipayUser, now: datetime) -> Any:
    """The customer's membership row, made first when missing (no points, no stamps),
    locked until the transaction ends (FOR UPDATE is left out on SQLite, where BEGIN
    IMMEDIATE locked everything): their stamps and points change one request at a time."""
    query = select(CUSTOMERS).where(*whose(CUSTOMERS, appid, user)).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        conn.execute(insert_ignoring_duplicates(storage, CUSTOMERS).values(
            appid=appid, user_kind=user.kind, alipay_user=user.id, points=0, earned=0, stamps=0, cards_filled=0,
            created_at=now, updated_at=now))
        row = conn.execute(query).one()
    return row


def china_day_start(day: date) -> datetime:
    """Midnight at the start of `day` in China, an aware time."""
    return datetime.combine(day, time(0), tzinfo=CHINA)
