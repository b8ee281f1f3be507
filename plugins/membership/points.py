"""Points and levels: kept for every logged-in customer who earns them (membership_customers,
one row per customer; membership_ledger, every change, unique per (app, reason, ref), so
the same order, follow or reward changes points once whoever asks twice).

* Earned: `per_yuan` points per whole yuan of a paid order (order_paid, announced by the
  ordering plugin; ref the order number: a payment announced twice credits once), and
  `per_follow` once for following the life account (POST membership/follow-points,
  verified with alipay.open.public.user.follow.query).
* Taken back: a refunded order (order_refunded) takes back the points its payment gave,
  once, in full: when they were spent already the balance goes below zero, points owed
  that later earnings pay off (spending needs a balance of the reward's cost), so "pay,
  spend the points on a reward, refund" does not give the reward for nothing. `earned`,
  which the level follows, loses the order's points too.
* Owed: a paid order whose points were not credited when it was announced (the listener
  failed, or the process stopped between the payment's commit and the announcement) is
  credited by `TASKS`' membership.order_points, which looks for paid orders of the last
  two days without their ledger row (the ordering plugin's table, when it is there).
* Every change of an order's points is announced as points_changed (messages.py may send
  it).
* Spent: POST membership/rewards/{coupon_id} (Idempotency-Key) spends the reward's points
  and claims the coupon through the coupon plugin's claim machinery
  (builder.serve.claims), the points and the claim both keyed by the Idempotency-Key; a
  claim refused (sold out, limit, Alipay's refusal) gives the points back, once (one
  refused later, when the job queue settles it, by `TASKS`' membership.refused_rewards);
  a replayed key answers as the first time.
* The level: the highest level whose min_points <= earned (MembershipSection.level_for).

`is_member` is what "members" means to the coupon audience (audience.py asks it): a
customer who holds the Alipay member card (biz_card_no stored by card_api).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from anyio import to_thread
from sqlalchemy import Connection, exists, select, update
from starlette.requests import Request
from starlette.responses import Response

from builder.serve import claims
from builder.serve.business_events import ORDER_PAID, ORDER_REFUNDED
from builder.serve.merchant import Merchant
from builder.serve.plugin_api import (
    ERROR,
    PREFIX,
    UNAVAILABLE,
    ApiError,
    BusinessEvent,
    Endpoint,
    ErrorReply,
    Operation,
    PeriodicTask,
    TaskContext,
    reply,
)
from builder.serve.storage import AlipayUser, NewClaim, Status, Storage
from plugins.coupon.serve import IDEMPOTENCY_KEY, announce_issued, claimable, require_following
from plugins.ordering.orders import FORGOTTEN_KIND
from plugins.ordering.orders import Status as OrderStatus

from .member_replies import LevelReply, MeReply, NextLevelReply, RewardClaimReply, RewardReply
from .messages import POINTS_CHANGED
from .models import MembershipSection
from .section import customer_request, membership_of, section_of
from .segments import orders_table
from .tables import CARDS, CUSTOMERS, LEDGER
from .writes import locked_customer, of_user, write

LOG = logging.getLogger(__name__)
ORDER, REFUND, FOLLOW, REWARD, REWARD_BACK = "order", "refund", "follow", "reward", "reward_back"
FEN_PER_YUAN = 100
RECENT_REWARDS = timedelta(days=1)
OWED_ORDERS = timedelta(days=2)  # how far back the order_points task looks
PAID_AND_AFTER = tuple(s.value for s in (OrderStatus.PAID, OrderStatus.ACCEPTED, OrderStatus.READY,
                                         OrderStatus.COMPLETED))


@dataclass(frozen=True)
class Customer:
    points: int
    earned: int
    stamps: int
    cards_filled: int
    biz_card_no: str | None
    card_opened_at: datetime | None
    card_points: int | None
    card_level: str | None
    followed_at: datetime | None


NEW_CUSTOMER = Customer(0, 0, 0, 0, None, None, None, None, None)


class NotEnoughPoints(Exception):
    def __init__(self, points: int, cost: int) -> None:
        super().__init__(f"{points} points, {cost} needed")
        self.points, self.cost = points, cost


# --- storage -------------------------------------------------------------------------

def _customer(row: Any) -> Customer:
    return Customer(points=row.points, earned=row.earned, stamps=row.stamps, cards_filled=row.cards_filled,
                    biz_card_no=row.biz_card_no, card_opened_at=row.card_opened_at, card_points=row.card_points,
                    card_level=row.card_level, followed_at=row.followed_at)


def _locked(conn: Connection, storage: Storage, appid: str, user: AlipayUser) -> Customer:
    """The customer, their row locked for the transaction (writes.locked_customer)."""
    return _customer(locked_customer(conn, storage, appid, user))


def find_customer(storage: Storage, appid: str, user: AlipayUser) -> Customer:
    """The customer as stored; a new customer's zeros when none is."""
    with storage.engine.connect() as conn:
        row = conn.execute(select(CUSTOMERS).where(of_user(CUSTOMERS, appid, user))).one_or_none()
    return NEW_CUSTOMER if row is None else _customer(row)


def is_member(storage: Storage, appid: str, user: AlipayUser) -> bool:
    """Whether the customer holds the app's Alipay member card (the coupon audience "members")."""
    return find_customer(storage, appid, user).biz_card_no is not None


def _ledger_delta(conn: Connection, appid: str, reason: str, ref: str) -> int | None:
    return conn.execute(select(LEDGER.c.delta).where(LEDGER.c.appid == appid, LEDGER.c.reason == reason,
                                                     LEDGER.c.ref == ref)).scalar_one_or_none()


def _apply(conn: Connection, storage: Storage, appid: str, user: AlipayUser, customer: Customer, reason: str,
           ref: str, delta: int, earned_delta: int) -> int:
    """Change the locked customer's points by `delta` (earned by `earned_delta`) and record
    it; the balance after."""
    now = storage.clock()
    balance = customer.points + delta
    conn.execute(update(CUSTOMERS).where(of_user(CUSTOMERS, appid, user)).values(
        points=balance, earned=max(0, customer.earned + earned_delta), updated_at=now))
    conn.execute(LEDGER.insert().values(appid=appid, user_kind=user.kind, alipay_user=user.id, reason=reason, ref=ref,
                                        delta=delta, balance=balance, created_at=now))
    return balance


def earn(storage: Storage, appid: str, user: AlipayUser, reason: str, ref: str, points: int) -> bool:
    """Give `points` once per (reason, ref); False when that ref gave them before."""
    with write(storage) as conn:
        customer = _locked(conn, storage, appid, user)
        if _ledger_delta(conn, appid, reason, ref) is not None:
            return False
        _apply(conn, storage, appid, user, customer, reason, ref, points, points)
        return True


def take_back_order(storage: Storage, appid: str, user: AlipayUser, order_no: str) -> int:
    """Take back what the order's payment gave, once and in full (see the module
    docstring); the points taken."""
    with write(storage) as conn:
        customer = _locked(conn, storage, appid, user)  # first: two refunds at once take back once
        given = _ledger_delta(conn, appid, ORDER, order_no)
        if given is None or _ledger_delta(conn, appid, REFUND, order_no) is not None:
            return 0
        _apply(conn, storage, appid, user, customer, REFUND, order_no, -given, -given)
        return given


def spend(storage: Storage, appid: str, user: AlipayUser, ref: str, cost: int) -> bool:
    """Spend `cost` points for reward `ref`, once: False when `ref` spent them before;
    NotEnoughPoints when the customer has fewer."""
    with write(storage) as conn:
        customer = _locked(conn, storage, appid, user)
        if _ledger_delta(conn, appid, REWARD, ref) is not None:
            return False
        if customer.points < cost:
            raise NotEnoughPoints(customer.points, cost)
        _apply(conn, storage, appid, user, customer, REWARD, ref, -cost, 0)
        return True


def give_back(storage: Storage, appid: str, user: AlipayUser, ref: str) -> bool:
    """Give back what reward `ref` spent (its claim was refused), once."""
    with write(storage) as conn:
        customer = _locked(conn, storage, appid, user)
        spent = _ledger_delta(conn, appid, REWARD, ref)
        if spent is None or _ledger_delta(conn, appid, REWARD_BACK, ref) is not None:
            return False
        _apply(conn, storage, appid, user, customer, REWARD_BACK, ref, -spent, 0)
        return True


def mark_followed(storage: Storage, appid: str, user: AlipayUser, points: int) -> bool:
    """Record the follow and give its points, once; False when it was recorded before."""
    ref = hashlib.sha256(f"{user.kind}:{user.id}".encode()).hexdigest()
    with write(storage) as conn:
        customer = _locked(conn, storage, appid, user)
        if customer.followed_at is not None:
            return False
        conn.execute(update(CUSTOMERS).where(of_user(CUSTOMERS, appid, user)).values(followed_at=storage.clock()))
        if points:
            _apply(conn, storage, appid, user, customer, FOLLOW, ref, points, points)
        return True


def apply_card_url(storage: Storage, appid: str) -> str | None:
    """The card's claim link (activateurl.apply's answer) once card_api made the card."""
    with storage.engine.connect() as conn:
        return conn.execute(select(CARDS.c.apply_card_url).where(CARDS.c.appid == appid)).scalar_one_or_none()


def return_refused_rewards(storage: Storage, appid: str, since: datetime) -> int:
    """Give back the points of rewards spent since `since` whose claim failed after the
    request answered (Alipay refused it when the job queue settled it); how many."""
    back = LEDGER.alias("back")
    with storage.engine.connect() as conn:
        rows = conn.execute(select(LEDGER.c.user_kind, LEDGER.c.alipay_user, LEDGER.c.ref).where(
            LEDGER.c.appid == appid, LEDGER.c.reason == REWARD, LEDGER.c.created_at >= since,
            ~exists().where(back.c.appid == appid, back.c.reason == REWARD_BACK, back.c.ref == LEDGER.c.ref))).all()
    returned = 0
    for row in rows:
        user = AlipayUser(row.user_kind, row.alipay_user)
        claim = storage.find_claim(appid, user, reward_claim_key(row.ref))
        if claim is not None and claim.status is Status.FAILED and give_back(storage, appid, user, row.ref):
            returned += 1
    return returned


def rewards_task(context: TaskContext) -> None:
    """The job queue's run of `return_refused_rewards` for the last day's rewards of every
    app with a membership section (a pending claim is settled within minutes)."""
    since = context.storage.clock() - RECENT_REWARDS
    for appid, sections in context.sections.items():
        if section_of(sections) is not None:
            returned = return_refused_rewards(context.storage, appid, since)
            if returned:
                LOG.info("app %s: %d refused rewards' points given back", appid, returned)


# --- the `me` answer -----------------------------------------------------------------

def me_answer(merchant: Merchant, section: MembershipSection, customer: Customer,
              claim_link: str | None) -> MeReply:
    level = section.level_for(customer.earned)
    higher = [lv for lv in section.levels if lv.min_points > customer.earned]
    rewards = []
    for reward in section.points.rewards:
        coupon = merchant.coupon(reward.coupon)
        rewards.append(RewardReply(coupon=reward.coupon, title=coupon.title if coupon else reward.coupon,
                                   points=reward.points, affordable=customer.points >= reward.points))
    member = customer.biz_card_no is not None
    return MeReply(member=member, card_no=customer.biz_card_no, level=LevelReply(id=level.id, name=level.name),
                   next_level=NextLevelReply(id=higher[0].id, name=higher[0].name, min_points=higher[0].min_points)
                   if higher else None,
                   points=customer.points, earned=customer.earned, stamps=customer.stamps,
                   stamps_per_card=section.stamp_card.stamps if section.stamp_card else None,
                   cards_filled=customer.cards_filled, apply_card_url=None if member else claim_link,
                   rewards=rewards, followed=customer.followed_at is not None)


# --- events ----------------------------------------------------------------------------

def on_event(context: TaskContext, event: BusinessEvent) -> None:
    """order_paid earns per_yuan points per whole yuan; order_refunded takes them back."""
    section = section_of(context.sections.get(event.appid, {}))
    if section is None:
        return
    if event.kind == ORDER_PAID:
        credit_order(context, section, event.appid, event.user, event.ref, event.amount_fen)
    elif event.kind == ORDER_REFUNDED:
        taken = take_back_order(context.storage, event.appid, event.user, event.ref)
        if taken:
            LOG.info("app %s: order %s refunded: %d points taken back", event.appid, event.ref, taken)
            _announce_change(context, event.appid, event.user, f"refund:{event.ref}", -taken)


def credit_order(context: TaskContext, section: MembershipSection, appid: str, user: AlipayUser, order_no: str,
                 paid_fen: int) -> bool:
    """Credit a paid order's points, once per order number; whether this call did."""
    points = section.points.per_yuan * (paid_fen // FEN_PER_YUAN)
    if not points or not earn(context.storage, appid, user, ORDER, order_no, points):
        return False
    LOG.info("app %s: order %s earned %d points", appid, order_no, points)
    _announce_change(context, appid, user, f"order:{order_no}", points)
    return True


def _announce_change(context: TaskContext, appid: str, user: AlipayUser, ref: str, points: int) -> None:
    balance = find_customer(context.storage, appid, user).points
    context.announce(BusinessEvent(appid, user, POINTS_CHANGED, ref, context.storage.clock(),
                                   data=(("balance", str(balance)), ("points", str(points)))))


def owed_orders(storage: Storage, appid: str, since: datetime) -> list[tuple[AlipayUser, str, int]]:
    """(customer, order number, paid fen) of the app's orders paid since `since` whose
    points were never credited; none without the ordering plugin's table."""
    with storage.engine.connect() as conn:
        orders = orders_table(conn)
        if orders is None:
            return []
        rows = conn.execute(select(orders.c.user_kind, orders.c.alipay_user, orders.c.out_trade_no, orders.c.total)
                            .where(orders.c.appid == appid, orders.c.paid_at >= since,
                                   orders.c.status.in_(PAID_AND_AFTER), orders.c.user_kind != FORGOTTEN_KIND,
                                   ~exists().where(LEDGER.c.appid == appid, LEDGER.c.reason == ORDER,
                                                   LEDGER.c.ref == orders.c.out_trade_no))).all()
    return [(AlipayUser(r.user_kind, r.alipay_user), r.out_trade_no, r.total) for r in rows]


def order_points_task(context: TaskContext) -> None:
    """The job queue's credit of orders whose announcement was lost (module docstring)."""
    since = context.storage.clock() - OWED_ORDERS
    for appid, sections in context.sections.items():
        section = section_of(sections)
        if section is None or not section.points.per_yuan:
            continue
        for user, order_no, paid_fen in owed_orders(context.storage, appid, since):
            if credit_order(context, section, appid, user, order_no, paid_fen):
                LOG.warning("app %s: order %s's points were owed (its announcement was lost); credited now",
                            appid, order_no)


# --- routes ----------------------------------------------------------------------------

FOLLOW_POINTS = Operation(
    "followPoints", "POST", f"{PREFIX}/membership/follow-points",
    "Give the follow's points, once Alipay says the user follows the life account", session="required",
    responses={200: ("the customer's membership (the points given once; asking again changes nothing)", (MeReply,)),
               401: ("no valid session token", ERROR),
               403: ("not_following: Alipay says the user does not follow the life account", ERROR),
               404: ("unknown app id, or no membership section", ERROR),
               502: ("Alipay refused to say, or its answer did not verify", ERROR), **UNAVAILABLE})
REWARD_CLAIM = Operation(
    "claimReward", "POST", f"{PREFIX}/membership/rewards/{{coupon_id}}",
    "Spend points on a reward coupon and claim it", session="required",
    headers={"Idempotency-Key": ("the client's id of this attempt (1 to 64 printable ASCII characters); a retry "
                                 "sends the same key and gets the same answer", f"^{IDEMPOTENCY_KEY.pattern}$")},
    responses={200: ("the points were spent and the coupon claimed (CLAIMED) or reserved (RESERVED)",
                     (RewardClaimReply,)),
               400: ("no or a malformed Idempotency-Key", ERROR), 401: ("no valid session token", ERROR),
               403: ("the user is not in the coupon's audience (the coupon plugin's codes)", ERROR),
               404: ("unknown_reward: the coupon is no reward of the membership section", ERROR),
               409: ("not_enough_points (nothing spent); or the claim was refused (SOLD_OUT, LIMIT_REACHED, "
                     "NOT_ELIGIBLE, REFUSED: a RewardClaimReply, the points given back); or the coupon is outside "
                     "its dates", (RewardClaimReply, ErrorReply)),
               422: ("the Idempotency-Key was used for another reward", ERROR),
               503: ("PENDING (a RewardClaimReply: the points are spent, Alipay did not answer; retry with the same "
                     "key), or the database is unavailable", (RewardClaimReply, ErrorReply))},
    parameters={"coupon_id": {"description": "a coupon of membership.points.rewards", "schema": {"type": "string"}}})


async def follow_points(request: Request) -> Response:
    api, merchant, section, user = customer_request(request, membership_of)
    customer = await to_thread.run_sync(find_customer, api.storage, merchant.appid, user)
    if customer.followed_at is None:
        await require_following(api.clients[merchant.appid], user)
        await to_thread.run_sync(mark_followed, api.storage, merchant.appid, user, section.points.per_follow)
        customer = await to_thread.run_sync(find_customer, api.storage, merchant.appid, user)
    link = await to_thread.run_sync(apply_card_url, api.storage, merchant.appid)
    return reply(200, me_answer(merchant, section, customer, link))


def reward_ref(user: AlipayUser, key: str) -> str:
    """The ledger ref of a reward attempt: the user's Idempotency-Key, hashed to fit."""
    return hashlib.sha256(f"{user.kind}:{user.id}:{key}".encode()).hexdigest()


def reward_claim_key(ref: str) -> str:
    """The Idempotency-Key of a reward's claim: its own, never one the app sends the claim route."""
    return f"points-{ref[:40]}"


async def claim_reward(request: Request) -> Response:
    api, merchant, section, user = customer_request(request, membership_of)
    key = request.headers.get("idempotency-key")
    if key is None or not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(400, "invalid_idempotency_key", "send an Idempotency-Key header (1 to 64 printable ASCII "
                                                       "characters), the same on retries")
    coupon_id = request.path_params["coupon_id"]
    reward = next((r for r in section.points.rewards if r.coupon == coupon_id), None)
    if reward is None:
        raise ApiError(404, "unknown_reward", f"coupon {coupon_id!r} is not a points reward of this mini-program")
    ref = reward_ref(user, key)
    claim_key = reward_claim_key(ref)
    storage, client, retry = api.storage, api.clients[merchant.appid], api.limits.retry
    earlier = await to_thread.run_sync(storage.find_claim, merchant.appid, user, claim_key)
    try:
        if earlier is not None:
            found = await claims.resume(storage, client, earlier, coupon_id, None, retry)
        else:
            coupon = await claimable(api, merchant, coupon_id, user, as_reward=True)
            try:
                await to_thread.run_sync(spend, storage, merchant.appid, user, ref, reward.points)
            except NotEnoughPoints as short:
                raise ApiError(409, "not_enough_points", f"the reward costs {short.cost} points; the customer has "
                                                         f"{short.points}") from None
            new = NewClaim(appid=merchant.appid, coupon_id=coupon.id, activity_id=coupon.activity_id, user=user,
                           idempotency_key=claim_key, route=merchant.route(coupon.id), ch_info=None)
            found = await claims.claim_new(storage, client, new, coupon, retry)
    except claims.KeyReused:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for another reward; use a "
                                                      "new key") from None
    await api.jobs.settle_later(found)
    await announce_issued(api, found)
    if found.status is Status.FAILED and await to_thread.run_sync(give_back, storage, merchant.appid, user, ref):
        LOG.info("app %s: reward %s refused; points given back", merchant.appid, coupon_id)
    status, answer = claims.answer(found)
    customer = await to_thread.run_sync(find_customer, storage, merchant.appid, user)
    return reply(200 if status == 201 else status, RewardClaimReply(points=customer.points, claim=answer),
                 {"Retry-After": "1"} if status == 503 else None)


ENDPOINTS = (Endpoint(FOLLOW_POINTS, follow_points), Endpoint(REWARD_CLAIM, claim_reward))
TASKS = (PeriodicTask("membership.refused_rewards", rewards_task, cron="* * * * *"),
         PeriodicTask("membership.order_points", order_points_task, cron="*/5 * * * *"))
