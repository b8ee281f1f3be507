"""Subscription messages (订阅消息): what customers allowed, and the back end's sends.

* `POST /api/v1/{appid}/membership/subscriptions` `{"accepted": [templateId...],
  "rejected": [...]}` -> 204: the mini-program reports what my.requestSubscribeMessage
  answered. Every accepted template adds one allowed send (one-time templates: "次数可累积",
  docs/alipay-membership-facts.md 2.1); a rejection takes nothing back that was allowed
  before. A template id that is not one of the spec's `membership.messages.templates`
  is 422 `unknown_template`, nothing stored.
* The sends, through alipay.open.app.mini.templatemessage.send (AlipayClient): an order
  ready (`on_event`: the ordering board's order_ready, whose data may name the store by
  `store_name`, else by its id `store`), points changed (`on_event`: this plugin's
  points_changed, announced where points change, e.g. a stamp), a voucher of the coupon
  plugin that expires tomorrow in China (the periodic task `membership.coupon_expiring`,
  every hour). Each send, decided in one transaction under the customer's row lock (the
  core's users row): only when the customer allowed the template (allowed > 0, which it
  uses up), at most `messages.per_user_per_day` a day (China) to one customer, and never
  twice for the same (template, customer, ref) (membership_messages is unique on them:
  an event announced twice, or the task run twice at once, sends once). The row is
  written `sending` before Alipay is called, then `sent` or `refused` (Alipay's sub_code
  kept); one Alipay did not answer stays `sending` and is not retried: a message
  possibly delivered twice is worse than one missed.
* The message's data: the template's `fields`, in order, as keyword1, keyword2, ...
  (each at most 50 characters); a field the event does not know is "-". `page`: the
  template's page (pages/<id>/<id>), else none (inferred: Alipay then opens the home
  page; not confirmed in a current doc).
  The back end does not know the shop's name (TaskContext carries the spec's plugin
  sections only): `shop` is the store's name the event carries, else "-".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from anyio import to_thread
from pydantic import Field
from sqlalchemy import func, select, update
from starlette.requests import Request
from starlette.responses import Response

from builder.model import page_path
from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.api_models import FieldError
from builder.serve.api_models import Request as RequestBody
from builder.serve.business_events import ORDER_READY, BusinessEvent
from builder.serve.content import china_today, expires_on
from builder.serve.merchant import Merchant
from builder.serve.plugin_api import (
    CLIENT_ERRORS,
    ERROR,
    PREFIX,
    UNAVAILABLE,
    ApiError,
    Endpoint,
    Operation,
    PeriodicTask,
    TaskContext,
    read_json,
    validated,
)
from builder.serve.storage import CLAIMS, USERS, AlipayUser, Status, Storage
from plugins.coupon.models import CouponSection

from .models import Messages, MessageTemplate
from .section import customer_request, section_of
from .tables import MESSAGES, SUBSCRIPTIONS
from .writes import china_day_start, insert_ignoring_duplicates, of_user, write

LOG = logging.getLogger(__name__)
MAX_VALUE_CHARS = 50
MAX_TEMPLATES_PER_REQUEST = 20  # my.requestSubscribeMessage asks for at most 3 at once
UNKNOWN = "-"
SENDING, SENT, REFUSED = "sending", "sent", "refused"
# The membership plugin's own event: a customer's points changed. ref: unique per change
# (e.g. "stamp:<nonce>"); data: points (the change, signed), balance (after it).
POINTS_CHANGED = "points_changed"


# --- what customers allowed -----------------------------------------------------------------

class SubscriptionsRequest(RequestBody):
    accepted: list[str] = Field(default_factory=list, max_length=MAX_TEMPLATES_PER_REQUEST,
                                description="template ids my.requestSubscribeMessage answered 'accept' for")
    rejected: list[str] = Field(default_factory=list, max_length=MAX_TEMPLATES_PER_REQUEST,
                                description="template ids answered 'reject' (nothing is taken back)")


SUBSCRIBE = Operation(
    "recordSubscriptions", "POST", f"{PREFIX}/membership/subscriptions",
    "Record what the customer answered my.requestSubscribeMessage",
    request=SubscriptionsRequest, session="required",
    responses={204: ("recorded: each accepted template allows one more message", ()),
               **CLIENT_ERRORS,
               401: ("no valid session token", ERROR),
               404: ("unknown app id, or error.code no_messages: the app sends no subscription messages", ERROR),
               422: ("the body does not validate, or error.code unknown_template: a template id that is not one "
                     "of the spec's membership.messages.templates (error.fields says which); nothing stored", ERROR),
               **UNAVAILABLE})


def messages_of(sections: Mapping[str, Any]) -> Messages | None:
    """The messages of an app's membership section (None: it sends none)."""
    section = section_of(sections)
    return None if section is None else section.messages


def _offered(merchant: Merchant) -> Messages:
    """The app's messages; ApiError 404 when it sends none."""
    messages = messages_of(merchant.sections)
    if messages is None:
        raise ApiError(404, "no_messages", "this mini-program sends no subscription messages (membership.messages "
                                           "in its spec)")
    return messages


def add_acceptances(storage: Storage, appid: str, user: AlipayUser, template_ids: set[str], now: datetime) -> None:
    """One more allowed send of each template, in one transaction."""
    with write(storage) as conn:
        for template_id in sorted(template_ids):
            conn.execute(insert_ignoring_duplicates(storage, SUBSCRIPTIONS).values(
                appid=appid, user_kind=user.kind, alipay_user=user.id, template_id=template_id, allowed=0,
                updated_at=now))
            conn.execute(update(SUBSCRIPTIONS).where(of_user(SUBSCRIPTIONS, appid, user),
                                                     SUBSCRIPTIONS.c.template_id == template_id)
                         .values(allowed=SUBSCRIPTIONS.c.allowed + 1, updated_at=now))


async def subscribe(request: Request) -> Response:
    api, merchant, messages, user = customer_request(request, _offered)
    body = validated(SubscriptionsRequest, await read_json(request, api.limits.max_body_bytes))
    known = {t.template_id for t in messages.templates}
    unknown = [FieldError(location=f"{where}.{i}", message=f"{template_id!r} is not a template of this mini-program")
               for where, ids in (("accepted", body.accepted), ("rejected", body.rejected))
               for i, template_id in enumerate(ids) if template_id not in known]
    if unknown:
        raise ApiError(422, "unknown_template", f"unknown template ids; the templates are {', '.join(sorted(known))}",
                       fields=unknown)
    if body.accepted:
        await to_thread.run_sync(add_acceptances, api.storage, merchant.appid, user, set(body.accepted), api.clock())
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


# --- sending ------------------------------------------------------------------------------

def _reserve(storage: Storage, appid: str, user: AlipayUser, template: MessageTemplate, ref: str, per_day: int,
             now: datetime) -> str | None:
    """The send recorded `sending` and one allowance used, in one transaction; or why
    not: "not_allowed", "daily_limit", "sent_before"."""
    with write(storage) as conn:
        # The customer's core row, locked: their sends are decided one at a time, so the
        # day's count below stays true until this one is recorded.
        conn.execute(select(USERS.c.id).where(of_user(USERS, appid, user)).with_for_update()).first()
        allowed = conn.execute(select(SUBSCRIPTIONS.c.allowed).where(
            of_user(SUBSCRIPTIONS, appid, user), SUBSCRIPTIONS.c.template_id == template.template_id)
            .with_for_update()).scalar()
        if not allowed or allowed <= 0:
            return "not_allowed"
        today = conn.execute(select(func.count()).select_from(MESSAGES).where(
            of_user(MESSAGES, appid, user), MESSAGES.c.status.in_((SENDING, SENT)),
            MESSAGES.c.created_at >= china_day_start(china_today(now)))).scalar_one()
        if today >= per_day:
            return "daily_limit"
        inserted = conn.execute(insert_ignoring_duplicates(storage, MESSAGES).values(
            appid=appid, user_kind=user.kind, alipay_user=user.id, template_id=template.template_id,
            event=template.event, ref=ref, status=SENDING, created_at=now).returning(MESSAGES.c.id)).first()
        if inserted is None:  # the row is an earlier send's
            return "sent_before"
        conn.execute(update(SUBSCRIPTIONS).where(of_user(SUBSCRIPTIONS, appid, user),
                                                 SUBSCRIPTIONS.c.template_id == template.template_id)
                     .values(allowed=SUBSCRIPTIONS.c.allowed - 1, updated_at=now))
    return None


def _settle(storage: Storage, appid: str, user: AlipayUser, template_id: str, ref: str, status: str,
            sub_code: str | None) -> None:
    with write(storage) as conn:
        conn.execute(update(MESSAGES).where(of_user(MESSAGES, appid, user), MESSAGES.c.template_id == template_id,
                                            MESSAGES.c.ref == ref)
                     .values(status=status, alipay_sub_code=sub_code[:64] if sub_code else None))


def send(context: TaskContext, appid: str, user: AlipayUser, template: MessageTemplate, ref: str,
         values: Mapping[str, str], per_day: int) -> str:
    """Send `template` to `user` for `ref` (an order, a claim) when the rules allow
    (the module docstring): "sent", "refused", "unanswered", or why it was not sent."""
    storage = context.storage
    skipped = _reserve(storage, appid, user, template, ref, per_day, storage.clock())
    if skipped is not None:
        LOG.info("app %s: message %s for %s not sent: %s", appid, template.id, ref, skipped)
        return skipped
    data = {f"keyword{i}": (values.get(name) or UNKNOWN)[:MAX_VALUE_CHARS]
            for i, name in enumerate(template.fields, start=1)}
    by_user_id = user.kind == "user_id"
    try:
        context.clients[appid].send_template_message(
            template.template_id, data, page=page_path(template.page) if template.page else None,
            to_user_id=user.id if by_user_id else None, to_open_id=None if by_user_id else user.id)
    except (AlipayUnavailable, UnverifiedResponse):
        LOG.warning("app %s: message %s for %s: no verified answer from Alipay; not retried", appid, template.id, ref)
        return "unanswered"
    except AlipayError as refused:
        LOG.info("app %s: message %s for %s refused (%s)", appid, template.id, ref, refused.sub_code or refused.code)
        _settle(storage, appid, user, template.template_id, ref, REFUSED, refused.sub_code or refused.code)
        return REFUSED
    _settle(storage, appid, user, template.template_id, ref, SENT, None)
    LOG.info("app %s: message %s for %s sent", appid, template.id, ref)
    return SENT


def on_event(context: TaskContext, event: BusinessEvent) -> None:
    """An order ready ("your order is ready") or the customer's points changed, to a
    customer who allowed the template of that event."""
    if event.kind not in (ORDER_READY, POINTS_CHANGED):
        return
    messages = messages_of(context.sections.get(event.appid, {}))
    if messages is None:
        return
    if event.kind == ORDER_READY:
        store = event.get("store_name") or event.get("store") or UNKNOWN
        values = {"order_no": event.ref, "store": store, "status": "已出餐，请取餐", "shop": store}
    else:
        change = int(event.get("points") or 0)
        values = {"points": f"{change:+d}", "balance": event.get("balance") or UNKNOWN,
                  "status": "积分已到账" if change >= 0 else "积分已使用"}
    for template in messages.templates:
        if template.event == event.kind:
            send(context, event.appid, event.user, template, event.ref, values, messages.per_user_per_day)


def send_coupon_expiring(context: TaskContext) -> None:
    """"Your coupon expires tomorrow": every issued voucher of the coupon plugin whose
    last day (builder.serve.content.expires_on) is tomorrow in China."""
    tomorrow = china_today(context.storage.clock()) + timedelta(days=1)
    for appid, sections in context.sections.items():
        messages, coupons = messages_of(sections), sections.get("coupon")
        if messages is None or not isinstance(coupons, CouponSection):
            continue
        templates = [t for t in messages.templates if t.event == "coupon_expiring"]
        if not templates:
            continue
        for coupon in coupons.coupons:
            for claim in _issued_expiring(context.storage, appid, coupon.id, coupon.validity.days_after_claim,
                                          coupon.validity.end, tomorrow):
                if expires_on(coupon, claim.created_at) != tomorrow:
                    continue
                user = AlipayUser(claim.user_kind, claim.alipay_user)
                values = {"coupon": coupon.title, "expires": tomorrow.isoformat(), "status": "明天到期"}
                for template in templates:
                    send(context, appid, user, template, claim.out_biz_no, values, messages.per_user_per_day)


def _issued_expiring(storage: Storage, appid: str, coupon_id: str, days_after_claim: int | None,
                     end: date | None, tomorrow: date) -> list[Any]:
    """The coupon's issued claims that may expire `tomorrow`: all of them for a fixed end
    of tomorrow; those claimed on the one day that gives tomorrow for N days after claim."""
    query = select(CLAIMS.c.user_kind, CLAIMS.c.alipay_user, CLAIMS.c.out_biz_no, CLAIMS.c.created_at).where(
        CLAIMS.c.appid == appid, CLAIMS.c.coupon_id == coupon_id, CLAIMS.c.status == Status.ISSUED.value)
    if days_after_claim is not None:
        claimed = tomorrow - timedelta(days=days_after_claim)
        query = query.where(CLAIMS.c.created_at >= china_day_start(claimed),
                            CLAIMS.c.created_at < china_day_start(claimed + timedelta(days=1)))
    elif end != tomorrow:
        return []
    with storage.engine.connect() as conn:
        return list(conn.execute(query.order_by(CLAIMS.c.id)))


ENDPOINTS = (Endpoint(SUBSCRIBE, subscribe),)
TASKS = (PeriodicTask("membership.coupon_expiring", send_coupon_expiring, cron="0 * * * *"),)
