"""The customer view's funnel: of the visitors of a period, how many had reached each
step by its end, per channel and per entry point.

The steps, in order:

* visit: a user, or a device's anonymous id, with an event (the promotion plugin's
  `open`, `visit`, ...) in the period. A device that visited before logging in and
  after counts twice: its events before the login carry no user.
* follow: followed the life account: an event of kind `follow` or `follow_success`
  (what a page may record when the follow button reports one), or the follow's points
  given (membership_customers.followed_at, set after follow.query said yes).
* claim: holds a coupon issued (claims, status issued).
* member: holds the member card (membership_customers.biz_card_no).
* repeat: two paid orders or more (the ordering plugin's orders; none without its
  table).

Anonymous visitors reach only the first step. A visitor counts under the channel and
entry point of their first event in the period that names a channel (an attributed
launch or page); a visitor with none counts under "" (direct: no channel, no entry
point).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, String, Table, and_, case, func, literal, or_, select

from builder.serve.storage import CLAIMS, EVENTS, Storage

from .segments import PAID_STATUSES, orders_table
from .tables import CUSTOMERS

STEPS = ("visit", "follow", "claim", "member", "repeat")
FOLLOW_KINDS = ("follow", "follow_success")
ANONYMOUS = "anonymous"  # the key kind of a visitor known by a device id only


@dataclass
class Funnel:
    """Visitors at each step (STEPS order) for one channel or entry point ("" direct)."""

    key: str
    counts: list[int] = field(default_factory=lambda: [0] * len(STEPS))


@dataclass(frozen=True)
class Visitor:
    channel: str
    entry_point: str
    steps: tuple[bool, ...]  # reached each of STEPS


def visitors(storage: Storage, appid: str, start: datetime, end: datetime) -> list[Visitor]:
    """Every visitor of [start, end) with the steps they had reached by `end`."""
    with storage.engine.connect() as conn:
        return [Visitor(row.channel or "", row.entry_point or "",
                        (True, bool(row.followed), bool(row.claimed), bool(row.member), bool(row.repeat)))
                for row in conn.execute(_visitors_query(conn, appid, start, end))]


def _visitors_query(conn: Connection, appid: str, start: datetime, end: datetime) -> Select[Any]:
    events = EVENTS
    has_user = events.c.alipay_user.is_not(None)
    key_kind = case((has_user, events.c.user_kind), else_=literal(ANONYMOUS, String))
    key_id = case((has_user, events.c.alipay_user), else_=events.c.anonymous_id)
    attributed = and_(events.c.channel.is_not(None), events.c.channel != "")
    ranked = (select(key_kind.label("kind"), key_id.label("who"), events.c.channel, events.c.entry_point,
                     func.row_number().over(partition_by=(key_kind, key_id),
                                            order_by=(case((attributed, 0), else_=1), events.c.at, events.c.id))
                     .label("rank"))
              .where(events.c.appid == appid, events.c.at >= start, events.c.at < end,
                     or_(has_user, events.c.anonymous_id.is_not(None)))
              .subquery("ranked"))

    firsts = select(ranked).where(ranked.c.rank == 1).subquery("visitors")
    joined: Any = firsts
    flags: list[ColumnElement[bool]] = []

    def reached(table: Table, name: str, *where: ColumnElement[bool],
                having: ColumnElement[bool] | None = None) -> None:
        """Join the users of `table` matching `where` (one pass, grouped per user); the
        visitor reached the step when they are among them."""
        nonlocal joined
        query = (select(table.c.user_kind, table.c.alipay_user).where(table.c.appid == appid, *where)
                 .group_by(table.c.user_kind, table.c.alipay_user))
        found = (query.having(having) if having is not None else query).subquery(name)
        joined = joined.outerjoin(found, and_(found.c.user_kind == firsts.c.kind,
                                              found.c.alipay_user == firsts.c.who))
        flags.append(found.c.alipay_user.is_not(None))

    customers = CUSTOMERS
    reached(events, "follow_events", events.c.kind.in_(FOLLOW_KINDS), events.c.alipay_user.is_not(None),
            events.c.at < end)
    reached(customers, "follow_points", customers.c.followed_at < end)
    reached(CLAIMS, "claimed", CLAIMS.c.status == "issued", CLAIMS.c.created_at < end)
    reached(customers, "members", customers.c.biz_card_no.is_not(None),
            or_(customers.c.card_opened_at.is_(None), customers.c.card_opened_at < end))
    orders = orders_table(conn)
    if orders is not None:
        reached(orders, "repeat", orders.c.status.in_(PAID_STATUSES), orders.c.paid_at < end,
                having=func.count() >= 2)
    follow_events, follow_points, claimed, member = flags[:4]
    repeat = flags[4] if orders is not None else literal(False)
    return (select(firsts.c.channel, firsts.c.entry_point, or_(follow_events, follow_points).label("followed"),
                   claimed.label("claimed"), member.label("member"), repeat.label("repeat"))
            .select_from(joined))


def funnels(found: Iterable[Visitor], by: str) -> list[Funnel]:
    """The funnel of each channel (`by` "channel") or entry point ("entry_point"),
    biggest first; direct visitors ("") last."""
    groups: dict[str, Funnel] = {}
    for visitor in found:
        key = visitor.channel if by == "channel" else visitor.entry_point
        funnel = groups.setdefault(key, Funnel(key))
        for i, reached in enumerate(visitor.steps):
            funnel.counts[i] += int(reached)
    return sorted(groups.values(), key=lambda f: (f.key == "", -f.counts[0], f.key))


def total(found: Sequence[Visitor]) -> Funnel:
    every = Funnel("")
    for visitor in found:
        for i, reached in enumerate(visitor.steps):
            every.counts[i] += int(reached)
    return every
