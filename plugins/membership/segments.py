"""Customers and segments, read in SQL: who an app's customers are, what each one's
figures are, and which segments (models.SegmentRule) they fall in.

A customer is a user who logged in to the app (the core's `users`). Their figures come
from the tables that hold them, joined per user:

* points, points earned in all (the level) and the card number: membership_customers
  (a user without a row has no points and no card);
* paid orders: the ordering plugin's `orders` (status paid, accepted, ready or
  completed; a refunded order does not count). The ordering plugin may be disabled: its
  table exists only where its migration ran, so `orders_table` asks the database
  whether the table is there (on the query's own connection) and counts none when not;
* last visit: the latest of the user's events, claims, paid orders and stamps, and the
  first login (a customer who logged in has visited at least then);
* the channel the customer came first through: the channel of their earliest event that
  names one (events sent with a session carry the user; a device's events before its
  first login carry only its anonymous id and are not linked to the user).

`customers_query` makes one row per customer with all of these; a segment's rule is a
WHERE condition on it (`rule_condition`), so counting, listing and testing one user are
the same SQL. Testing one user (`in_segment`, at every claim of a segment's coupon)
narrows every table's read to that user, which their indexes find (events': core
revision 0003), instead of reading the app's rows and keeping one. The level of a
member is the highest level whose min_points their earned points reach, as
MembershipSection.level_for says; a rule's `levels` hold for card holders only, as
`member` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    RowMapping,
    Select,
    Subquery,
    Table,
    and_,
    case,
    func,
    inspect,
    literal,
    select,
    true,
    type_coerce,
)

from builder.serve.storage import CLAIMS, EVENTS, USERS, AlipayUser, Storage, UtcDateTime
from plugins.ordering.orders import ORDERS

from .models import MembershipSection, Segment, SegmentRule
from .tables import CUSTOMERS, STAMPS
from .writes import of_user

PAID_STATUSES = ("paid", "accepted", "ready", "completed")  # orders.Status: the money is the shop's


@dataclass(frozen=True)
class Customer:
    """One customer's figures: `level` is a level id (members only), `segments` the ids of
    the segments they are in (when asked for)."""

    user: AlipayUser
    member: bool
    level: str | None
    points: int
    paid_orders: int
    last_visit: datetime
    first_channel: str | None
    mobile_sha256: str | None
    segments: tuple[str, ...] = ()


def orders_table(conn: Connection) -> Table | None:
    """The ordering plugin's orders table when this database has it (its migration ran),
    else None: then no customer has paid orders."""
    return ORDERS if inspect(conn).has_table(ORDERS.name) else None


def _latest(conn: Connection, times: Sequence[ColumnElement[datetime]]) -> ColumnElement[datetime]:
    """The latest of `times`, none of them NULL. SQLite's max(a, b, ...) is GREATEST."""
    latest = func.max(*times) if conn.dialect.name == "sqlite" else func.greatest(*times)
    return type_coerce(latest, UtcDateTime())


def _whose(table: Table, appid: str, user: AlipayUser | None) -> ColumnElement[bool]:
    """The rows of `table` that count: the app's users' (alipay_user set), or one user's
    (their index, not a pass over the app's rows)."""
    if user is None:
        return and_(table.c.appid == appid, table.c.alipay_user.is_not(None))
    return of_user(table, appid, user)


def _per_user(table: Table, appid: str, user: AlipayUser | None, name: str, *columns: ColumnElement[Any],
              where: Sequence[ColumnElement[bool]] = ()) -> Subquery:
    """`columns` aggregated per user of `table` (one pass over the app's rows, or over
    one user's)."""
    return (select(table.c.user_kind, table.c.alipay_user, *columns)
            .where(_whose(table, appid, user), *where)
            .group_by(table.c.user_kind, table.c.alipay_user).subquery(name))


def _first_channels(appid: str, user: AlipayUser | None) -> Subquery:
    """Each user's earliest event that names a channel: user_kind, alipay_user, channel."""
    events = EVENTS
    ranked = (select(events.c.user_kind, events.c.alipay_user, events.c.channel,
                     func.row_number().over(partition_by=(events.c.user_kind, events.c.alipay_user),
                                            order_by=(events.c.at, events.c.id)).label("rank"))
              .where(_whose(events, appid, user), events.c.channel.is_not(None), events.c.channel != "")
              .subquery("channelled"))
    return select(ranked.c.user_kind, ranked.c.alipay_user, ranked.c.channel).where(ranked.c.rank == 1).subquery(
        "first_channels")


def customers_query(conn: Connection, appid: str, section: MembershipSection,
                    user: AlipayUser | None = None) -> Subquery:
    """One row per customer of `appid`: user_kind, alipay_user, points, earned,
    biz_card_no, mobile_sha256, level (id, members only), paid_orders, last_visit,
    first_channel. Each other table is read once, grouped per user, and joined. With
    `user`, that customer's row alone (none when they never logged in): every table is
    read by the user's index, never the app's rows."""
    users = USERS
    joined: Any = users
    times: list[ColumnElement[datetime]] = [users.c.created_at]

    def join(found: Subquery) -> None:
        nonlocal joined
        joined = joined.outerjoin(found, and_(found.c.user_kind == users.c.user_kind,
                                              found.c.alipay_user == users.c.alipay_user))

    for table, column in ((EVENTS, "at"), (CLAIMS, "created_at"), (STAMPS, "created_at")):
        latest = _per_user(table, appid, user, f"{table.name}_latest", func.max(table.c[column]).label("latest"))
        join(latest)
        times.append(func.coalesce(type_coerce(latest.c.latest, UtcDateTime()), users.c.created_at))
    orders = orders_table(conn)
    paid_orders: ColumnElement[int]
    if orders is not None:
        paid = _per_user(orders, appid, user, "paid_orders", func.max(orders.c.paid_at).label("latest"),
                         func.count().label("paid"), where=[orders.c.status.in_(PAID_STATUSES)])
        join(paid)
        times.append(func.coalesce(type_coerce(paid.c.latest, UtcDateTime()), users.c.created_at))
        paid_orders = func.coalesce(paid.c.paid, 0)
    else:
        paid_orders = literal(0, Integer)
    channels = _first_channels(appid, user)
    join(channels)
    customers = CUSTOMERS
    joined = joined.outerjoin(customers, and_(customers.c.appid == users.c.appid,
                                              customers.c.user_kind == users.c.user_kind,
                                              customers.c.alipay_user == users.c.alipay_user))
    earned = func.coalesce(customers.c.earned, 0)
    level = case(*[(earned >= lv.min_points, lv.id) for lv in reversed(section.levels)], else_=None)
    member = customers.c.biz_card_no.is_not(None)
    query: Select[tuple[object, ...]] = (
        select(users.c.user_kind, users.c.alipay_user,
               func.coalesce(customers.c.points, 0).label("points"), earned.label("earned"),
               customers.c.biz_card_no, customers.c.mobile_sha256,
               case((member, level), else_=None).label("level"),
               paid_orders.label("paid_orders"), _latest(conn, times).label("last_visit"),
               channels.c.channel.label("first_channel"))
        .select_from(joined)
        .where(_whose(users, appid, user)))
    return query.subquery("customers")


def rule_condition(rows: Subquery, rule: SegmentRule, section: MembershipSection,
                   now: datetime) -> ColumnElement[bool]:
    """The rule as a condition on `customers_query`'s rows: every condition given holds."""
    conditions: list[ColumnElement[bool]] = []
    card = rows.c.biz_card_no
    if rule.member is not None:
        conditions.append(card.is_not(None) if rule.member else card.is_(None))
    if rule.levels is not None:
        conditions.append(rows.c.level.in_(rule.levels))  # ids the spec's levels have (mpforge_validate)
    if rule.inactive_days is not None:
        conditions.append(rows.c.last_visit <= now - timedelta(days=rule.inactive_days))
    if rule.active_days is not None:
        conditions.append(rows.c.last_visit > now - timedelta(days=rule.active_days))
    if rule.min_orders is not None:
        conditions.append(rows.c.paid_orders >= rule.min_orders)
    if rule.min_points is not None:
        conditions.append(rows.c.points >= rule.min_points)
    if rule.channel is not None:
        conditions.append(rows.c.first_channel == rule.channel)
    return and_(true(), *conditions)


def _customer(row: RowMapping, segments: tuple[str, ...] = ()) -> Customer:
    last_visit = row["last_visit"]
    assert isinstance(last_visit, datetime)  # the first login at least
    return Customer(user=AlipayUser(str(row["user_kind"]), str(row["alipay_user"])),
                    member=row["biz_card_no"] is not None, level=_text(row["level"]),
                    points=int(str(row["points"])), paid_orders=int(str(row["paid_orders"])), last_visit=last_visit,
                    first_channel=_text(row["first_channel"]), mobile_sha256=_text(row["mobile_sha256"]),
                    segments=segments)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def segment_members(storage: Storage, appid: str, section: MembershipSection, segment: Segment,
                    now: datetime) -> list[Customer]:
    """Every customer in `segment` now, the most recent visitors first."""
    with storage.engine.connect() as conn:
        rows = customers_query(conn, appid, section)
        found = conn.execute(select(rows).where(rule_condition(rows, segment.rule, section, now))
                             .order_by(rows.c.last_visit.desc(), rows.c.alipay_user))
        return [_customer(row._mapping) for row in found]


def segment_counts(storage: Storage, appid: str, section: MembershipSection, now: datetime) -> dict[str, int]:
    """How many customers each segment of the section holds now, by segment id."""
    if not section.segments:
        return {}
    with storage.engine.connect() as conn:
        rows = customers_query(conn, appid, section)
        counts = [func.coalesce(func.sum(case((rule_condition(rows, s.rule, section, now), 1), else_=0)), 0)
                  .label(f"s{i}") for i, s in enumerate(section.segments)]
        found = conn.execute(select(*counts).select_from(rows)).one()
        return {s.id: int(found[i]) for i, s in enumerate(section.segments)}


def list_customers(storage: Storage, appid: str, section: MembershipSection, now: datetime,
                   limit: int) -> tuple[int, list[Customer]]:
    """(how many customers the app has, the `limit` most recent visitors with the segments
    each is in)."""
    with storage.engine.connect() as conn:
        rows = customers_query(conn, appid, section)
        total = conn.execute(select(func.count()).select_from(rows)).scalar_one()
        tags = [case((rule_condition(rows, s.rule, section, now), 1), else_=0).label(f"s{i}")
                for i, s in enumerate(section.segments)]
        found = conn.execute(select(rows, *tags).order_by(rows.c.last_visit.desc(), rows.c.alipay_user)
                             .limit(limit))
        customers = [_customer(row._mapping, tuple(s.id for i, s in enumerate(section.segments)
                                                   if row._mapping[f"s{i}"]))
                     for row in found]
        return int(total), customers


def in_segment(storage: Storage, appid: str, user: AlipayUser, segment: Segment,
               section: MembershipSection) -> bool:
    """Whether `user` is in `segment` now (the storage's clock): a customer who never
    logged in to the app is in none."""
    now = storage.clock()
    with storage.engine.connect() as conn:
        rows = customers_query(conn, appid, section, user)
        found = conn.execute(select(rows.c.alipay_user).where(rule_condition(rows, segment.rule, section,
                                                                             now))).first()
        return found is not None


def segment_of(section: MembershipSection, segment_id: str) -> Segment | None:
    return next((s for s in section.segments if s.id == segment_id), None)
