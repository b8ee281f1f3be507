"""The back end's database: tables, migrations, and every read and write of them.

SQLite (a file; the default) or PostgreSQL (to run several processes), through
SQLAlchemy 2 Core. The schema is created and upgraded by Alembic (`migrations/`, and
each plugin's own branch of revisions from the `mpforge_serve_migrations` hook), run
from here at start-up (`Storage.migrate`), never by hand. The tables the first-party
plugins' routes use (claims, counters, events) are the core's, from revision 0001:
databases in use have applied it, so they stay there.

A claim takes stock in one transaction that cannot oversell nor let one user past a
rule that depends on their other claims (`Storage.reserve`):

* PostgreSQL: the user's row is locked (`SELECT ... FOR UPDATE`), then the coupon's
  counter row, always in that order (so two transactions never wait on each other in a
  cycle): one user's claims queue on their row, and the claims of one coupon on its
  counter. Under READ COMMITTED each later statement of the transaction sees what the
  claims before it committed (the user's claims of any coupon, the stock taken).
* SQLite: every write transaction starts with `BEGIN IMMEDIATE`, which takes the
  database's write lock before the first read; a deferred transaction that read first
  could not upgrade to a write in WAL mode once another writer committed (SQLITE_BUSY,
  which the busy timeout does not wait out). Writers of this process also queue on an
  in-process lock, so they wait their turn in order instead of in SQLite's busy-handler
  sleeps.

A user's own data (GET and DELETE /me/data, builder.serve.user_data): `user_record`
reads what the core's tables hold of them, `forget_user` deletes it, keeping their claims
under a keyed pseudonym that `reserve` still counts against their limits.

Times are stored in UTC.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import hmac
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator

from builder.errors import Problem, UserError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Serialises concurrent start-ups migrating one PostgreSQL database (any constant works;
# this one spells "mpforge" in ASCII).
MIGRATION_LOCK_ID = 0x6D70666F726765
# With an app id's hash, serialises the content versions one app publishes at once
# (pg_advisory_xact_lock(int, int); "mpcv" in ASCII).
CONTENT_LOCK_CLASS = 0x6D706376
SQLITE_PREFIX = "sqlite"
POSTGRESQL_PREFIX = "postgresql"
# What a forgotten user's kept claims hold instead of their id (Storage.pseudonym).
FORGOTTEN_PREFIX = "forgotten:"


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC. SQLite keeps no offset, so values are made naive
    UTC on the way in and aware again on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the database stores aware UTC times")
        return value.astimezone(timezone.utc).replace(tzinfo=None) if dialect.name == SQLITE_PREFIX else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# Constraint names fixed by convention, so a migration can name what it alters on both databases.
METADATA = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
})
# SQLite only numbers a column automatically when it is exactly INTEGER PRIMARY KEY.
ROW_ID = BigInteger().with_variant(Integer(), SQLITE_PREFIX)

USERS = Table(
    "users", METADATA,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("appid", String(16), nullable=False),
    Column("user_kind", String(8), nullable=False),  # user_id or open_id: the field of the id below
    Column("alipay_user", String(128), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("appid", "user_kind", "alipay_user"),
)

CLAIMS = Table(
    "claims", METADATA,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("appid", String(16), nullable=False),
    Column("coupon_id", String(64), nullable=False),
    Column("activity_id", String(64), nullable=False),
    Column("user_kind", String(8), nullable=False),
    Column("alipay_user", String(128), nullable=False),
    Column("idempotency_key", String(64), nullable=False),
    Column("out_biz_no", String(64), nullable=False, unique=True),
    Column("route", String(8), nullable=False),
    # Sent to Alipay with the voucher; kept so a retry repeats the call exactly (Alipay
    # refuses an out_biz_no sent again with other parameters).
    Column("ch_info", String(128)),
    Column("status", String(8), nullable=False),
    Column("voucher_code", String(64)),
    Column("error", String(32)),
    Column("alipay_sub_code", String(64)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("appid", "user_kind", "alipay_user", "idempotency_key"),
    CheckConstraint("status IN ('pending', 'issued', 'failed')", name="status"),
    CheckConstraint("route IN ('send', 'plugin')", name="route"),
    Index(None, "appid", "coupon_id", "user_kind", "alipay_user"),
)

COUNTERS = Table(
    "coupon_counters", METADATA,
    Column("appid", String(16), primary_key=True),
    Column("coupon_id", String(64), primary_key=True),
    # Stock taken: vouchers issued plus claims reserved and not yet settled (pending). A
    # claim Alipay refuses gives its unit back.
    Column("taken", Integer, nullable=False),
    CheckConstraint("taken >= 0", name="taken"),
)

EVENTS = Table(
    "events", METADATA,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("appid", String(16), nullable=False),
    Column("user_kind", String(8)),  # the logged-in user, when the events came with a session
    Column("alipay_user", String(128)),
    Column("anonymous_id", String(64)),  # the device's own id, before or without a login
    Column("kind", String(40), nullable=False),
    Column("scene", String(16)),
    Column("channel", String(64)),
    Column("entry_point", String(64)),
    Column("store", String(64)),
    Column("table_no", String(32)),
    Column("ch_info", String(128)),
    Column("page", String(128)),
    Column("at", UtcDateTime(), nullable=False),  # when it happened, by the device's clock
    Column("received_at", UtcDateTime(), nullable=False),
    Index(None, "appid", "at"),
    # One user's events (a segment coupon's claim, /me/data) without reading the app's.
    Index(None, "appid", "user_kind", "alipay_user", "at"),
)

CONTENT_VERSIONS = Table(
    "content_versions", METADATA,
    Column("appid", String(16), primary_key=True),
    Column("version", Integer, primary_key=True),  # 1, 2, ... per app; 0 is the spec's own content
    Column("body", Text, nullable=False),  # the content document, JSON (api_models.ContentDocument)
    Column("restored_from", Integer),  # the version this one copies, when made by a restore
    Column("published_at", UtcDateTime(), nullable=False),
    CheckConstraint("version >= 1", name="version"),
)


class Status(str, enum.Enum):
    PENDING = "pending"  # stock reserved; the voucher is not known to be issued (or, by plugin: handed out)
    ISSUED = "issued"
    FAILED = "failed"


class Route(str, enum.Enum):
    SEND = "send"  # the server issues the voucher (ordervoucher.send)
    PLUGIN = "plugin"  # the mini-program's coupon plugin (领券组件) issues it with the reserved out_biz_no


class ClaimError(str, enum.Enum):
    """Why a claim failed."""

    SOLD_OUT = "SOLD_OUT"
    LIMIT_REACHED = "LIMIT_REACHED"
    NOT_ELIGIBLE = "NOT_ELIGIBLE"  # a new customers' coupon, for a user who holds another coupon's claim
    ALIPAY_REFUSED = "ALIPAY_REFUSED"


@dataclasses.dataclass(frozen=True)
class AlipayUser:
    """Who a user is to Alipay: by user_id, or by open_id for apps on Alipay's OpenID scheme."""

    kind: str  # "user_id" or "open_id"
    id: str


@dataclasses.dataclass(frozen=True)
class NewClaim:
    """What a claim request asks for, before it has a row."""

    appid: str
    coupon_id: str
    activity_id: str
    user: AlipayUser
    idempotency_key: str
    route: Route
    ch_info: str | None


@dataclasses.dataclass(frozen=True)
class Claim:
    id: int
    appid: str
    coupon_id: str
    activity_id: str
    user: AlipayUser
    idempotency_key: str
    out_biz_no: str
    route: Route
    ch_info: str | None
    status: Status
    voucher_code: str | None
    error: ClaimError | None
    alipay_sub_code: str | None
    created_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True)
class ContentVersion:
    appid: str
    version: int
    body: str
    restored_from: int | None
    published_at: datetime


@dataclasses.dataclass(frozen=True)
class Event:
    kind: str
    at: datetime
    scene: str | None = None
    channel: str | None = None
    entry_point: str | None = None
    store: str | None = None
    table_no: str | None = None
    ch_info: str | None = None
    page: str | None = None


@dataclasses.dataclass(frozen=True)
class UserRecord:
    """What the core's tables hold of one user: when they first logged in (None: no
    row, e.g. a database replaced since), their claims (newest first) and the events
    their app sent while they were logged in (oldest first)."""

    first_seen: datetime | None
    claims: list[Claim]
    events: list[Event]


def _claim(row: Any) -> Claim:
    return Claim(id=row.id, appid=row.appid, coupon_id=row.coupon_id, activity_id=row.activity_id,
                 user=AlipayUser(row.user_kind, row.alipay_user), idempotency_key=row.idempotency_key,
                 out_biz_no=row.out_biz_no, route=Route(row.route), ch_info=row.ch_info, status=Status(row.status),
                 voucher_code=row.voucher_code, error=ClaimError(row.error) if row.error else None,
                 alipay_sub_code=row.alipay_sub_code, created_at=row.created_at, updated_at=row.updated_at)


def _content_version(row: Any) -> ContentVersion:
    return ContentVersion(appid=row.appid, version=row.version, body=row.body, restored_from=row.restored_from,
                          published_at=row.published_at)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def engine_url(database_url: str) -> str:
    """The URL SQLAlchemy is given: PostgreSQL through psycopg 3 (the driver mpforge
    installs) whatever the URL's scheme says, SQLite as given; anything else is refused."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == SQLITE_PREFIX:
        if url.database in (None, "", ":memory:"):
            raise ValueError("an in-memory SQLite database would be one per connection; give a file")
        return database_url
    raise ValueError(f"database URL scheme {url.drivername!r}: mpforge serve stores in sqlite:/// or postgresql://")


class Storage:
    """The back end's database. `busy_timeout` (seconds): how long a SQLite write waits
    for another process's; `pool_size`: connections kept open (PostgreSQL: each is a
    server process, mind max_connections); `clock`: now, aware, for timestamps;
    `forget_key`: keys the pseudonym a forgotten user's claims keep (`forget_user`;
    without it users cannot be forgotten). Every process serving one database needs the
    same key, or a forgotten user's coupon limits are not counted."""

    def __init__(self, database_url: str, *, busy_timeout: float = 5.0, pool_size: int = 20,
                 clock: Callable[[], datetime] = utc_now, forget_key: bytes | None = None) -> None:
        url = engine_url(database_url)
        self.clock = clock
        self._forget_key = forget_key
        # A fixed pool: connections beyond pool_size ("overflow") would be closed on their
        # return, so under sustained load each request would open one afresh (a server
        # process on PostgreSQL). Requests beyond it wait for a connection instead.
        # pre_ping: a connection the server dropped (a restart) is replaced, not used.
        # hide_parameters: a database error's message leaves out the values it was given.
        self.engine: Engine = create_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=30,
                                            pool_pre_ping=True, hide_parameters=True)
        self.dialect = self.engine.dialect.name
        self._sqlite_writer = threading.Lock()
        if self.dialect == SQLITE_PREFIX:
            self._set_up_sqlite(busy_timeout)

    def _set_up_sqlite(self, busy_timeout: float) -> None:
        @event.listens_for(self.engine, "connect")
        def connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy say BEGIN (below) instead of the sqlite3 module, which opens a
            # transaction only at the first write, after the reads it should cover.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            # WAL: readers do not block the writer nor it them. synchronous stays FULL (the
            # default): a claim committed before Alipay is called must survive a power cut.
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed at the end, rolled back on an exception. Public:
        plugins' own tables are written through it too, so their writers queue on the same
        SQLite lock (the module docstring) as the core's."""
        queue: AbstractContextManager[Any] = self._sqlite_writer if self.dialect == SQLITE_PREFIX else nullcontext()
        with queue, self.engine.connect() as conn:
            conn.execution_options(write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # --- schema -------------------------------------------------------------------------

    def migrate(self, plugin_versions: Sequence[Path] = ()) -> None:
        """Upgrade the schema to the newest revision of the core's and of every plugin's
        branch (creating it in an empty database), in one transaction that concurrent
        start-ups wait for. `plugin_versions`: the plugins' folders of revisions (the
        `mpforge_serve_migrations` hook), each a branch of its own that depends on the
        core's first revision."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        locations = [MIGRATIONS / "versions", *plugin_versions]
        config.set_main_option("version_locations", os.pathsep.join(str(folder) for folder in locations))
        # Both names: Alembic 1.16 reads path_separator, older ones version_path_separator.
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_path_separator", "os")
        with self.write() as conn:
            if self.dialect == POSTGRESQL_PREFIX:
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "heads")
            except CommandError as exc:
                # The database was migrated with a plugin that is not loaded now: its
                # revisions are unknown, and Alembic cannot place the database.
                raise UserError([Problem(f"the database's schema cannot be upgraded: {exc}",
                                         hint="a plugin whose tables this database holds may be missing: install "
                                              "it again, then start again")]) from None

    def insert_ignoring_duplicates(self, table: Table) -> Insert:
        """INSERT that does nothing when a unique key already has the row (any table:
        plugins use it for theirs). Whether it inserted is told by `.returning(<id>)`
        answering a row: psycopg's rowcount does not say it."""
        if self.dialect == POSTGRESQL_PREFIX:
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    # --- users ----------------------------------------------------------------------------

    def add_user(self, appid: str, user: AlipayUser) -> None:
        """Remember a user who logged in (the first time only)."""
        with self.write() as conn:
            conn.execute(self.insert_ignoring_duplicates(USERS).values(
                appid=appid, user_kind=user.kind, alipay_user=user.id, created_at=self.clock()))

    # --- claims ---------------------------------------------------------------------------

    def add_counters(self, appid: str, coupon_ids: Iterable[str]) -> None:
        """A stock counter for each coupon that has none yet."""
        rows = [{"appid": appid, "coupon_id": coupon_id, "taken": 0} for coupon_id in coupon_ids]
        if rows:
            with self.write() as conn:
                conn.execute(self.insert_ignoring_duplicates(COUNTERS), rows)

    def find_claim(self, appid: str, user: AlipayUser, idempotency_key: str) -> Claim | None:
        with self._read() as conn:
            return self._claim_by_key(conn, appid, user, idempotency_key)

    @staticmethod
    def _claim_by_key(conn: Connection, appid: str, user: AlipayUser, idempotency_key: str) -> Claim | None:
        row = conn.execute(select(CLAIMS).where(
            CLAIMS.c.appid == appid, CLAIMS.c.user_kind == user.kind, CLAIMS.c.alipay_user == user.id,
            CLAIMS.c.idempotency_key == idempotency_key)).first()
        return _claim(row) if row is not None else None

    def reserve(self, new: NewClaim, *, out_biz_no: str, stock: int, per_user_limit: int,
                new_customers_only: bool = False) -> Claim:
        """The claim for `new`: the one its Idempotency-Key already made, or a new one,
        pending (a unit of stock reserved, `out_biz_no` recorded before Alipay is asked)
        or failed (NOT_ELIGIBLE, LIMIT_REACHED, SOLD_OUT), decided in one transaction.

        new_customers_only: the coupon is for new customers: users without a claim
        (issued or pending) of any other coupon of the app. Their claims of this coupon
        count against `per_user_limit` only, so a limit above 1 still means something."""
        now = self.clock()
        with self.write() as conn:
            # The user's row first: until the end of the transaction no other claim of
            # theirs can be made, so what is read of their claims below stays true.
            self._lock_user(conn, new.appid, new.user, now)
            earlier = self._claim_by_key(conn, new.appid, new.user, new.idempotency_key)
            if earlier is not None:
                return earlier
            taken = self._lock_counter(conn, new.appid, new.coupon_id)
            # The user's claims, with those kept from before they had their data deleted
            # (forget_user): deleting it must not reset their coupon limits.
            ids = [new.user.id] + ([self.pseudonym(new.appid, new.user)] if self._forget_key else [])
            held: dict[str, int] = {coupon_id: count for coupon_id, count in conn.execute(
                select(CLAIMS.c.coupon_id, func.count()).where(
                    CLAIMS.c.appid == new.appid, CLAIMS.c.user_kind == new.user.kind,
                    CLAIMS.c.alipay_user.in_(ids), CLAIMS.c.status != Status.FAILED.value)
                .group_by(CLAIMS.c.coupon_id))}
            held_elsewhere = any(coupon_id != new.coupon_id for coupon_id in held)
            error = (ClaimError.NOT_ELIGIBLE if new_customers_only and held_elsewhere
                     else ClaimError.LIMIT_REACHED if held.get(new.coupon_id, 0) >= per_user_limit
                     else ClaimError.SOLD_OUT if taken >= stock else None)
            if error is None:
                conn.execute(update(COUNTERS).where(COUNTERS.c.appid == new.appid,
                                                    COUNTERS.c.coupon_id == new.coupon_id)
                             .values(taken=COUNTERS.c.taken + 1))
            status = Status.FAILED if error else Status.PENDING
            inserted = conn.execute(CLAIMS.insert().values(
                appid=new.appid, coupon_id=new.coupon_id, activity_id=new.activity_id, user_kind=new.user.kind,
                alipay_user=new.user.id, idempotency_key=new.idempotency_key, out_biz_no=out_biz_no,
                route=new.route.value, ch_info=new.ch_info, status=status.value,
                error=error.value if error else None, created_at=now, updated_at=now))
            key = inserted.inserted_primary_key
            assert key is not None  # an INSERT of one row has one
            # Built from what was written rather than read back: one statement less
            # while the coupon's lock is held.
            return Claim(id=key[0], appid=new.appid, coupon_id=new.coupon_id,
                         activity_id=new.activity_id, user=new.user, idempotency_key=new.idempotency_key,
                         out_biz_no=out_biz_no, route=new.route, ch_info=new.ch_info, status=status,
                         voucher_code=None, error=error, alipay_sub_code=None, created_at=now, updated_at=now)

    def _lock_user(self, conn: Connection, appid: str, user: AlipayUser, now: datetime) -> None:
        """Lock the user's row until the transaction ends (FOR UPDATE is left out on
        SQLite, where BEGIN IMMEDIATE locked everything). A missing row is added first:
        a session token outlives a database that was replaced."""
        query = select(USERS.c.id).where(USERS.c.appid == appid, USERS.c.user_kind == user.kind,
                                         USERS.c.alipay_user == user.id).with_for_update()
        if conn.execute(query).first() is None:
            conn.execute(self.insert_ignoring_duplicates(USERS).values(
                appid=appid, user_kind=user.kind, alipay_user=user.id, created_at=now))
            conn.execute(query).one()

    def _lock_counter(self, conn: Connection, appid: str, coupon_id: str) -> int:
        """Stock taken of the coupon, its counter row locked until the transaction ends
        (FOR UPDATE is left out on SQLite, where BEGIN IMMEDIATE locked everything)."""
        query = select(COUNTERS.c.taken).where(COUNTERS.c.appid == appid,
                                               COUNTERS.c.coupon_id == coupon_id).with_for_update()
        taken = conn.execute(query).scalar()
        if taken is None:  # a coupon added to the spec since start-up by another process
            conn.execute(self.insert_ignoring_duplicates(COUNTERS).values(appid=appid, coupon_id=coupon_id, taken=0))
            taken = conn.execute(query).scalar_one()
        return int(taken)

    def mark_issued(self, claim: Claim, voucher_code: str) -> Claim:
        """Record Alipay's voucher for a pending claim; the claim as it now stands."""
        now = self.clock()
        with self.write() as conn:
            changed = conn.execute(update(CLAIMS).where(CLAIMS.c.id == claim.id,
                                                        CLAIMS.c.status == Status.PENDING.value)
                                   .values(status=Status.ISSUED.value, voucher_code=voucher_code, updated_at=now))
            if changed.rowcount == 1:
                return dataclasses.replace(claim, status=Status.ISSUED, voucher_code=voucher_code, updated_at=now)
            return self._claim_by_id(conn, claim.id)  # settled meanwhile by a replay of its key

    def mark_refused(self, claim: Claim, alipay_sub_code: str) -> Claim:
        """Record Alipay's refusal of a pending claim and give its unit of stock back, in
        one transaction (once, however many requests report the same refusal)."""
        now, sub_code = self.clock(), alipay_sub_code[:64]
        with self.write() as conn:
            changed = conn.execute(update(CLAIMS).where(CLAIMS.c.id == claim.id,
                                                        CLAIMS.c.status == Status.PENDING.value)
                                   .values(status=Status.FAILED.value, error=ClaimError.ALIPAY_REFUSED.value,
                                           alipay_sub_code=sub_code, updated_at=now))
            if changed.rowcount != 1:
                return self._claim_by_id(conn, claim.id)  # settled meanwhile by a replay of its key
            conn.execute(update(COUNTERS).where(COUNTERS.c.appid == claim.appid,
                                                COUNTERS.c.coupon_id == claim.coupon_id)
                         .values(taken=COUNTERS.c.taken - 1))
            return dataclasses.replace(claim, status=Status.FAILED, error=ClaimError.ALIPAY_REFUSED,
                                       alipay_sub_code=sub_code, updated_at=now)

    @staticmethod
    def _claim_by_id(conn: Connection, claim_id: int) -> Claim:
        return _claim(conn.execute(select(CLAIMS).where(CLAIMS.c.id == claim_id)).one())

    def claim(self, claim_id: int) -> Claim | None:
        """The claim with this id, as it stands (None if there is none)."""
        with self._read() as conn:
            row = conn.execute(select(CLAIMS).where(CLAIMS.c.id == claim_id)).first()
            return _claim(row) if row is not None else None

    def pending_sends(self, created_before: datetime) -> list[int]:
        """The ids of the claims still waiting for Alipay's voucher (pending, send route)
        that were reserved before `created_before`, oldest first."""
        with self._read() as conn:
            return list(conn.execute(select(CLAIMS.c.id).where(
                CLAIMS.c.status == Status.PENDING.value, CLAIMS.c.route == Route.SEND.value,
                CLAIMS.c.created_at < created_before).order_by(CLAIMS.c.id)).scalars())

    def taken(self, appid: str) -> dict[str, int]:
        """Stock taken of each of the app's coupons (issued plus reserved), by coupon id."""
        with self._read() as conn:
            return {coupon_id: taken for coupon_id, taken in conn.execute(
                select(COUNTERS.c.coupon_id, COUNTERS.c.taken).where(COUNTERS.c.appid == appid))}

    def held_claims(self, appid: str, user: AlipayUser) -> list[Claim]:
        """The user's claims that hold a voucher (issued) or a reservation (pending),
        newest first."""
        with self._read() as conn:
            rows = conn.execute(select(CLAIMS).where(
                CLAIMS.c.appid == appid, CLAIMS.c.user_kind == user.kind, CLAIMS.c.alipay_user == user.id,
                CLAIMS.c.status != Status.FAILED.value).order_by(CLAIMS.c.created_at.desc(), CLAIMS.c.id.desc()))
            return [_claim(row) for row in rows]

    # --- content versions -----------------------------------------------------------------

    def add_content_version(self, appid: str, body: str, *, restored_from: int | None = None) -> ContentVersion:
        """Store `body` (a content document's JSON) as the app's next version."""
        now = self.clock()
        with self.write() as conn:
            if self.dialect == POSTGRESQL_PREFIX:  # SQLite: BEGIN IMMEDIATE serialised it already
                conn.execute(text("SELECT pg_advisory_xact_lock(:lock_class, hashtext(:appid))"),
                             {"lock_class": CONTENT_LOCK_CLASS, "appid": appid})
            newest = conn.execute(select(func.max(CONTENT_VERSIONS.c.version))
                                  .where(CONTENT_VERSIONS.c.appid == appid)).scalar()
            version = ContentVersion(appid=appid, version=(newest or 0) + 1, body=body,
                                     restored_from=restored_from, published_at=now)
            conn.execute(CONTENT_VERSIONS.insert().values(dataclasses.asdict(version)))
            return version

    def content_version(self, appid: str, version: int | None = None) -> ContentVersion | None:
        """Version `version` of the app's content, or the newest when None; None when
        there is no such version."""
        query = select(CONTENT_VERSIONS).where(CONTENT_VERSIONS.c.appid == appid)
        if version is None:
            query = query.order_by(CONTENT_VERSIONS.c.version.desc()).limit(1)
        else:
            query = query.where(CONTENT_VERSIONS.c.version == version)
        with self._read() as conn:
            row = conn.execute(query).first()
            return _content_version(row) if row is not None else None

    def content_versions(self, appid: str) -> list[ContentVersion]:
        """Every version of the app's content, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(CONTENT_VERSIONS).where(CONTENT_VERSIONS.c.appid == appid)
                                .order_by(CONTENT_VERSIONS.c.version))
            return [_content_version(row) for row in rows]

    # --- events ---------------------------------------------------------------------------

    def add_events(self, appid: str, user: AlipayUser | None, anonymous_id: str | None,
                   events: Sequence[Event]) -> None:
        received = self.clock()
        rows = [{"appid": appid, "user_kind": user.kind if user else None, "alipay_user": user.id if user else None,
                 "anonymous_id": anonymous_id, "kind": e.kind, "scene": e.scene, "channel": e.channel,
                 "entry_point": e.entry_point, "store": e.store, "table_no": e.table_no, "ch_info": e.ch_info,
                 "page": e.page, "at": e.at, "received_at": received} for e in events]
        with self.write() as conn:
            conn.execute(EVENTS.insert(), rows)

    # --- a user's own data (GET and DELETE /me/data) ---------------------------------------

    def pseudonym(self, appid: str, user: AlipayUser) -> str:
        """What a forgotten user's kept claims hold instead of their id: a keyed hash
        (HMAC-SHA256 with `forget_key`), so the claims still count against the same
        user's coupon limits if they come back, while nobody holding the database
        without the key can tell whose they were (an Alipay user id is 16 digits:
        a plain hash of one is reversed by trying them all)."""
        if self._forget_key is None:
            raise ValueError("this Storage was made without forget_key, so it cannot forget users")
        mac = hmac.new(self._forget_key, f"{appid}\n{user.kind}\n{user.id}".encode(), hashlib.sha256)
        return FORGOTTEN_PREFIX + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    def user_record(self, appid: str, user: AlipayUser) -> UserRecord:
        """Everything the core's tables hold of `user` (nothing of anyone else)."""
        mine = (EVENTS.c.appid == appid, EVENTS.c.user_kind == user.kind, EVENTS.c.alipay_user == user.id)
        with self._read() as conn:
            first_seen = conn.execute(select(USERS.c.created_at).where(
                USERS.c.appid == appid, USERS.c.user_kind == user.kind, USERS.c.alipay_user == user.id)).scalar()
            claims = [_claim(row) for row in conn.execute(select(CLAIMS).where(
                CLAIMS.c.appid == appid, CLAIMS.c.user_kind == user.kind, CLAIMS.c.alipay_user == user.id)
                .order_by(CLAIMS.c.created_at.desc(), CLAIMS.c.id.desc()))]
            events = [Event(kind=row.kind, at=row.at, scene=row.scene, channel=row.channel,
                            entry_point=row.entry_point, store=row.store, table_no=row.table_no,
                            ch_info=row.ch_info, page=row.page)
                      for row in conn.execute(select(EVENTS).where(*mine).order_by(EVENTS.c.at, EVENTS.c.id))]
        return UserRecord(first_seen=first_seen, claims=claims, events=events)

    def forget_user(self, appid: str, user: AlipayUser) -> None:
        """Delete the core's records of `user`, in one transaction; safe to repeat.

        Their row and their events are deleted. Their claims are kept with their id
        replaced by `pseudonym` (and the Idempotency-Key, which the device chose, by the
        claim's own out_biz_no): a claim is the merchant's record of stock given out and
        of a voucher Alipay issued (or, pending, is still issuing: the job queue settles
        it by its id), and `reserve` counts it against the same user's limits, so
        deleting one's data is no way to claim a once-per-customer coupon again."""
        pseudonym = self.pseudonym(appid, user)
        with self.write() as conn:
            # The user's row first, as `reserve` locks it: a claim of theirs being made
            # now is either counted here or, made after, counts what is kept.
            conn.execute(select(USERS.c.id).where(USERS.c.appid == appid, USERS.c.user_kind == user.kind,
                                                  USERS.c.alipay_user == user.id).with_for_update()).first()
            conn.execute(update(CLAIMS).where(CLAIMS.c.appid == appid, CLAIMS.c.user_kind == user.kind,
                                              CLAIMS.c.alipay_user == user.id)
                         .values(alipay_user=pseudonym, idempotency_key=CLAIMS.c.out_biz_no))
            conn.execute(delete(EVENTS).where(EVENTS.c.appid == appid, EVENTS.c.user_kind == user.kind,
                                              EVENTS.c.alipay_user == user.id))
            conn.execute(delete(USERS).where(USERS.c.appid == appid, USERS.c.user_kind == user.kind,
                                             USERS.c.alipay_user == user.id))
