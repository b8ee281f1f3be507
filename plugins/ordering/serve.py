"""The ordering plugin's part of the back end (`mpforge serve`), through the serve hooks.

Routes under /api/v1/{appid}/:

* `POST orders` (session, Idempotency-Key): price the order on the server (pricing.py),
  store it (created), create its Alipay trade (alipay.trade.create: JSAPI_PAY with the
  app id as op_app_id, or FACE_TO_FACE_PAYMENT as the spec says; the session user as the
  buyer; notify_url from MPFORGE_PUBLIC_URL), answer the order with `tradeNo` for
  my.tradePay. A replay of the key answers the same order, creating its trade if Alipay
  did not answer the first time (same out_trade_no).
* `GET orders/{order_id}`, `GET me/orders`: the session user's orders. GET of an order
  still created asks Alipay first (alipay.trade.query), as my.tradePay's doc says to
  after resultCode 9000, 8000 or 6004: a payment whose notification is late or lost, or
  whose page was closed, shows as paid when the order is next looked at.
* `POST alipay/notify`: Alipay's asynchronous notification (form-encoded). Trusted only
  when its RSA2 signature verifies with Alipay's key and its app_id is this app's
  (AlipayClient.verify_notification); then out_trade_no must be an order of this app and
  total_amount its total. TRADE_SUCCESS / TRADE_FINISHED mark it paid, once (duplicates
  and refund notices change nothing); the answer is the literal `success`. Anything not
  trusted is answered `fail` and changes nothing.

Limited stock (a catalogue product's `stock:`; stock.py) is reserved in the
transaction that stores the order: too few units left answers 409 sold_out naming the
product, and nothing is stored. An order that ends closed gives its units back.

Unpaid orders do not hold stock for ever: the trade is created with timeout_express
`ordering.pay_within_minutes` (so Alipay closes its side too), and `reconcile`, run
every minute on the job queue (`TASKS`, through the mpforge_serve_tasks hook), settles
every order still created after that long: alipay.trade.query; paid -> paid;
WAIT_BUYER_PAY -> alipay.trade.close, then closed; TRADE_CLOSED or ACQ.TRADE_NOT_EXIST
(Alipay never made the trade) -> closed. Run twice at once (two processes, or a run
that outlasts the minute), it changes each order once: every change is a transition
under the order's row lock, and a transition already made is not made again.

`refund_order` (the order board's refund) is a plain function here.

Whatever marks an order paid (the notification, GET of the order, a create that finds
the trade paid, reconcile) goes through `settle`, which announces order_paid
(builder.serve.business_events) to the plugins once the change is stored, from the call
that made it; the order board announces order_ready and order_refunded.

The sandbox's alipay.trade.create, .query, .close and .refund and its
`POST /sandbox/pay` (a buyer paying) are in sandbox.py.

MPFORGE_PUBLIC_URL: the server's public base URL, which Alipay posts notifications to
(`{MPFORGE_PUBLIC_URL}/api/v1/{appid}/alipay/notify`). It must be https (Alipay requires
a public HTTPS notify_url); http is accepted only for a loopback host (a local run with
the sandbox). Without it, orders are refused (503) before anything is stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl, urlsplit

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from builder.serve.alipay_client import AlipayClient
from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.business_events import ORDER_PAID
from builder.serve.merchant import Merchant
from builder.serve.plugin_api import (
    CLIENT_ERRORS,
    ERROR,
    PREFIX,
    UNAVAILABLE,
    Api,
    ApiError,
    BusinessEvent,
    Endpoint,
    FieldError,
    Operation,
    PeriodicTask,
    TaskContext,
    read_json,
    reply,
    serve_api,
    validated,
)
from builder.serve.storage import Storage
from builder.spec_models import CatalogueProduct

from . import orders
from .api_models import OrderLineReply, OrderReply, OrderRequest, OrdersReply
from .models import OrderingSection
from .order_center import order_center_task
from .orders import AFTER_PAYMENT, NewOrder, Order, Status
from .pricing import CHINA, LineRequest, Menu, Priced, Refused, price_order, yuan_text
from .pricing import OrderRequest as PricingRequest
from .stock import SoldOut

LOG = logging.getLogger(__name__)
PUBLIC_URL_VARIABLE = "MPFORGE_PUBLIC_URL"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,64}")  # as the coupon claims': printable ASCII, no spaces
Announce = Callable[[BusinessEvent], None]  # Api.announce, TaskContext.announce
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")  # the only ones that mean paid (facts 3)
WAIT_BUYER_PAY, TRADE_CLOSED = "WAIT_BUYER_PAY", "TRADE_CLOSED"
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
TRADE_HAS_SUCCESS = "ACQ.TRADE_HAS_SUCCESS"  # trade.create of an out_trade_no already paid
NOTIFY_MAX_BYTES = 16 * 1024
SUBJECT_UNSAFE = re.compile(r"[/=&]")  # characters Alipay refuses in subject

ORDER_ID = {"order_id": {"description": "an order number (out_trade_no) of the session user",
                         "schema": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,64}$"}}}
CREATE_ORDER = Operation(
    "createOrder", "POST", f"{PREFIX}/orders", "Order from the catalogue: priced by the server, with an Alipay trade",
    request=OrderRequest, session="required",
    headers={"Idempotency-Key": ("the client's id of this order attempt (1 to 64 printable ASCII characters); a "
                                 "retry sends the same key and gets the same order", f"^{IDEMPOTENCY_KEY.pattern}$")},
    responses={201: ("the order, created (or the one this key made): pass tradeNo to my.tradePay({tradeNO}). Only "
                     "Alipay's verified notification (or trade.query) marks it paid", (OrderReply,)),
               **CLIENT_ERRORS, 401: ("no valid session token", ERROR),
               404: ("unknown app id, or the app takes no orders (its spec has no ordering section)", ERROR),
               409: ("sold_out (marked sold out, or fewer units of a limited product left than ordered), "
                     "store_closed or below_minimum: error.fields says which line; nothing was stored. Or "
                     "order_expired: this key's order was closed unpaid (its time to pay is over): send the order "
                     "again with a new Idempotency-Key", ERROR),
               422: ("invalid_order (an unknown product, option or choice, a required option left out, several "
                     "choices of a single option, a product not sold at the store, a mode not offered: "
                     "error.fields locates each), the body does not validate, or the Idempotency-Key was used for "
                     "another order", ERROR),
               502: ("Alipay refused the trade (error.alipaySubCode), the order is closed; or its answer did not "
                     "verify", ERROR),
               503: ("Alipay did not answer: retry with the same Idempotency-Key. Or the database is unavailable, or "
                     "the server has no MPFORGE_PUBLIC_URL", ERROR)},
    response_headers={503: {"Retry-After": "seconds"}})
GET_ORDER = Operation(
    "getOrder", "GET", f"{PREFIX}/orders/{{order_id}}", "One of the session user's orders", session="required",
    parameters=ORDER_ID,
    responses={200: ("the order as it is now; one still created is checked with Alipay (trade.query) first, so "
                     "poll this after my.tradePay", (OrderReply,)), 401: ("no valid session token", ERROR),
               404: ("unknown app id, or no such order of this user", ERROR), **UNAVAILABLE})
MY_ORDERS = Operation(
    "listMyOrders", "GET", f"{PREFIX}/me/orders", "The session user's orders, newest first (at most 50)",
    session="required",
    responses={200: ("the orders", (OrdersReply,)), 401: ("no valid session token", ERROR),
               404: ("unknown app id", ERROR), **UNAVAILABLE})
NOTIFY = Operation(
    "alipayNotify", "POST", f"{PREFIX}/alipay/notify",
    "Alipay's asynchronous payment notification (application/x-www-form-urlencoded, RSA2-signed by Alipay)",
    responses={200: ("text/plain `success`: verified and recorded (a duplicate changes nothing); Alipay stops "
                     "resending", ()),
               400: ("text/plain `fail`: not trusted (signature, app_id), or not one of this app's orders, or "
                     "total_amount differs from the order's; nothing changed, and Alipay resends", ()),
               404: ("unknown app id", ERROR), **UNAVAILABLE})


class NotConfigured(Exception):
    """The server lacks what ordering needs (MPFORGE_PUBLIC_URL)."""


def notify_url(appid: str, public_url: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """Where Alipay posts `appid`'s payment notifications: under the server's public URL,
    as the process was given it (`mpforge dev`) or else from MPFORGE_PUBLIC_URL."""
    base = (public_url or environ.get(PUBLIC_URL_VARIABLE, "")).strip().rstrip("/")
    if not base:
        raise NotConfigured(f"set {PUBLIC_URL_VARIABLE} to the server's public https URL (Alipay posts payment "
                            "notifications there), and restart it")
    parts = urlsplit(base)
    if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)) or not parts.netloc:
        raise NotConfigured(f"{PUBLIC_URL_VARIABLE} must be an https URL (http only for 127.0.0.1 or localhost)")
    return f"{base}/api/v1/{appid}/alipay/notify"


def ordering_of(merchant: Merchant) -> OrderingSection:
    section = merchant.sections.get("ordering")
    if not isinstance(section, OrderingSection):
        raise ApiError(404, "ordering_not_offered", "this mini-program takes no orders (its spec has no ordering "
                                                    "section)")
    return section


def _reply(order: Order) -> OrderReply:
    return OrderReply(id=order.out_trade_no, status=order.status.value, trade_no=order.trade_no, store=order.store,
                      mode=order.mode, table=order.table_no,
                      lines=[OrderLineReply.model_validate(line) for line in order.lines], subtotal=order.subtotal,
                      packaging_fee=order.packaging_fee, delivery_fee=order.delivery_fee, total=order.total,
                      total_text=yuan_text(order.total), created_at=order.created_at, paid_at=order.paid_at)


def _digest(body: OrderRequest) -> str:
    text = json.dumps(body.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _out_trade_no(section: OrderingSection, now: datetime) -> str:
    """The order number: the spec's prefix, the China date, 12 random hex digits (letters
    and digits only, as out_trade_no allows)."""
    return f"{section.order_prefix}{now.astimezone(CHINA):%Y%m%d}{secrets.token_hex(6).upper()}"


async def create_order(request: Request) -> Response:
    api = serve_api(request)
    merchant = api.merchant(request)
    section = ordering_of(merchant)
    user = api.user(request, merchant.appid, required=True)
    assert user is not None  # required=True raises instead
    key = request.headers.get("idempotency-key")
    if key is None:
        raise ApiError(400, "missing_idempotency_key", "send an Idempotency-Key header, the same on retries")
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key is 1 to 64 printable ASCII characters")
    body = validated(OrderRequest, await read_json(request, api.limits.max_body_bytes))
    digest = _digest(body)
    try:
        url = notify_url(merchant.appid, api.public_url)
    except NotConfigured as exc:
        raise ApiError(503, "ordering_not_configured", str(exc)) from None
    order = await to_thread.run_sync(orders.find_by_key, api.storage, merchant.appid, user, key)
    if order is None:
        _, document = await to_thread.run_sync(api.current_document, merchant)
        menu = Menu(products={p.id: p for p in merchant.products}, ordering=section, stores=merchant.stores,
                    runtime={p.id: (p.price, p.sold_out) for p in document.products})
        wanted = PricingRequest(store=body.store, mode=body.mode, lines=[
            LineRequest(line.product, line.quantity, line.choices) for line in body.lines])
        try:
            priced = price_order(menu, wanted, api.clock())
        except Refused as refused:
            raise ApiError(422 if refused.code == "invalid_order" else 409, refused.code,
                           "the order cannot be taken as sent; error.fields says why",
                           fields=[FieldError(location=p.location, message=p.message)
                                   for p in refused.problems]) from None
        new = NewOrder(appid=merchant.appid, out_trade_no=_out_trade_no(section, api.clock()), user=user,
                       idempotency_key=key, request_digest=digest, table_no=body.table, priced=priced,
                       stock={p.id: p.stock for p in merchant.products if p.stock is not None})
        try:
            created, _ = await to_thread.run_sync(orders.add_order, api.storage, new)
        except SoldOut as gone:
            raise _sold_out(priced, gone) from None
        order = created
    if order.request_digest != digest:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for another order; use a new "
                                                      "key")
    order = await _with_trade(api, merchant, section, order, url)
    return reply(201, _reply(order))


def _sold_out(priced: Priced, gone: SoldOut) -> ApiError:
    """409 sold_out locating the first line of each product short of units."""
    fields = []
    for short in gone.short:
        at, line = next((i, ln) for i, ln in enumerate(priced.lines) if ln.product == short.product)
        left = f" (fewer than {short.wanted} left)" if short.wanted > 1 else ""
        fields.append(FieldError(location=f"lines.{at}.product", message=f"{line.name!r} is sold out{left}"))
    return ApiError(409, "sold_out", "the order cannot be taken as sent; error.fields says why", fields=fields)


def _expired() -> ApiError:
    return ApiError(409, "order_expired", "this Idempotency-Key's order was closed unpaid (its time to pay is over); "
                                          "send the order again with a new key")


async def _with_trade(api: Api, merchant: Merchant, section: OrderingSection, order: Order, url: str) -> Order:
    """The order with its Alipay trade, created now when it has none yet. No trade is
    made for an order whose time to pay is over (reconcile closes those, and a trade
    made then could be paid for an order closed meanwhile): it is closed here, and a
    key whose order is closed gets order_expired."""
    if order.status == Status.CLOSED:
        if order.alipay_sub_code:
            raise ApiError(502, "alipay_refused", "Alipay refused to create the trade; the order is closed",
                           alipay_sub_code=order.alipay_sub_code)
        raise _expired()
    if order.trade_no is not None or order.status != Status.CREATED:
        return order
    if order.created_at + timedelta(minutes=section.pay_within_minutes) <= api.clock():
        closed = await to_thread.run_sync(_close, api.storage, order)
        if closed.status == Status.CLOSED:
            raise _expired()
        # paid meanwhile (a payment always wins): the order as it is now
        return await to_thread.run_sync(orders.find, api.storage, order.appid, order.out_trade_no) or closed
    client = api.clients[merchant.appid]
    by_user_id = order.user.kind == "user_id"
    subject = SUBJECT_UNSAFE.sub(" ", f"{merchant.name} {order.out_trade_no}")[:256]
    try:
        trade_no = await to_thread.run_sync(lambda: client.trade_create(
            out_trade_no=order.out_trade_no, total_amount=yuan_text(order.total), subject=subject, notify_url=url,
            buyer_id=order.user.id if by_user_id else None, buyer_open_id=None if by_user_id else order.user.id,
            product_code=section.product_code, op_app_id=merchant.appid,
            timeout_express=f"{section.pay_within_minutes}m"))
    except UnverifiedResponse:
        raise ApiError(502, "alipay_unverified", "Alipay's answer did not verify; check the server's Alipay public "
                                                 "key") from None
    except AlipayError as refused:
        if refused.sub_code == TRADE_HAS_SUCCESS:
            # An earlier create got through unheard, and the buyer paid it (from the bill
            # list): what Alipay says of the trade settles the order, never a close.
            settled = await to_thread.run_sync(ask_alipay, api.storage, client, order, api.announce)
            if settled.status == Status.CREATED:  # trade.query gave no answer: not known yet
                raise ApiError(503, "alipay_unavailable", "Alipay did not answer; retry with the same "
                                                          "Idempotency-Key", headers={"Retry-After": "1"}) from None
            return settled
        sub_code = refused.sub_code or refused.code
        await to_thread.run_sync(lambda: orders.transition(api.storage, order.id, Status.CLOSED,
                                                           alipay_sub_code=sub_code))
        raise ApiError(502, "alipay_refused", "Alipay refused to create the trade; the order is closed",
                       alipay_sub_code=sub_code) from None
    except AlipayUnavailable:
        raise ApiError(503, "alipay_unavailable", "Alipay did not answer; retry with the same Idempotency-Key",
                       headers={"Retry-After": "1"}) from None
    stored = await to_thread.run_sync(orders.set_trade_no, api.storage, order, trade_no)
    if stored.status == Status.CLOSED:
        # Reconcile closed the order while its trade was being made: close the trade too,
        # so nothing is left to pay (were it paid anyway, the payment reopens the order).
        await to_thread.run_sync(_close_trade, client, stored)
        raise _expired()
    return stored


def _close_trade(client: AlipayClient, order: Order) -> None:
    try:
        client.trade_close(order.out_trade_no)
    except (AlipayError, AlipayUnavailable) as exc:
        LOG.warning("app %s: order %s: the trade of a closed order could not be closed (%s)", order.appid,
                    order.out_trade_no, exc)


async def get_order(request: Request) -> Response:
    api = serve_api(request)
    merchant = api.merchant(request)
    user = api.user(request, merchant.appid, required=True)
    order = await to_thread.run_sync(orders.find, api.storage, merchant.appid, request.path_params["order_id"])
    if order is None or order.user != user:
        raise ApiError(404, "unknown_order", "no such order of this user")
    if order.status == Status.CREATED and order.trade_no is not None:
        order = await to_thread.run_sync(ask_alipay, api.storage, api.clients[merchant.appid], order, api.announce)
    return reply(200, _reply(order))


async def list_my_orders(request: Request) -> Response:
    api = serve_api(request)
    merchant = api.merchant(request)
    user = api.user(request, merchant.appid, required=True)
    assert user is not None  # required=True raises instead
    found = await to_thread.run_sync(orders.users_orders, api.storage, merchant.appid, user)
    return reply(200, OrdersReply(orders=[_reply(order) for order in found]))


def _same_amount(text: str | None, fen: int) -> bool:
    try:
        return text is not None and Decimal(text) * 100 == fen
    except InvalidOperation:
        return False


async def alipay_notify(request: Request) -> Response:
    api = serve_api(request)
    merchant = api.merchant(request)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > NOTIFY_MAX_BYTES:  # a notification is a few hundred bytes
            return PlainTextResponse("fail", status_code=400)
    try:
        params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        params = {}
    if not api.clients[merchant.appid].verify_notification(params):
        LOG.warning("app %s: a payment notification did not verify; ignored", merchant.appid)
        return PlainTextResponse("fail", status_code=400)
    outcome = await to_thread.run_sync(lambda: settle(api.storage, merchant.appid, params, api.announce))
    return PlainTextResponse("success" if outcome else "fail", status_code=200 if outcome else 400)


def tell_nobody(_event: BusinessEvent) -> None:
    """The announce of a caller that tells no plugin what happened (a tool, a test)."""


def settle(storage: Storage, appid: str, trade: Mapping[str, str], announce: Announce = tell_nobody) -> bool:
    """Record what Alipay says of a trade (a verified notification's fields, or
    trade.query's): False when it names no order of `appid`, or another amount or trade
    than the order's. An order it marks paid is announced (order_paid), once the change
    is stored; only the call that made the change announces it."""
    order = orders.find(storage, appid, trade.get("out_trade_no", ""))
    if order is None:
        LOG.warning("app %s: Alipay reports a trade of no order here", appid)
        return False
    if not _same_amount(trade.get("total_amount"), order.total):
        LOG.error("app %s: order %s: Alipay reports another total_amount; left unchanged", appid,
                  order.out_trade_no)
        return False
    trade_no = trade.get("trade_no")
    if order.trade_no is not None and trade_no and trade_no != order.trade_no:
        LOG.error("app %s: order %s: Alipay reports another trade_no; left unchanged", appid, order.out_trade_no)
        return False
    if order.trade_no is None and trade_no:
        order = orders.set_trade_no(storage, order, trade_no)
    status = trade.get("trade_status")
    try:
        if status in PAID_STATUSES:
            paid, changed = orders.transition(storage, order.id, Status.PAID, already=AFTER_PAYMENT)
            if changed:
                LOG.info("app %s: order %s paid", appid, order.out_trade_no)
            if changed and paid.user.kind != orders.FORGOTTEN_KIND:  # no one to credit or tell
                announce(BusinessEvent(appid=appid, user=paid.user, kind=ORDER_PAID, ref=paid.out_trade_no,
                                       at=storage.clock(), amount_fen=paid.total, data=(("store", paid.store),)))
        elif status == TRADE_CLOSED and order.status == Status.CREATED:
            orders.transition(storage, order.id, Status.CLOSED)
    except orders.IllegalTransition as exc:
        LOG.error("app %s: order %s: %s; left unchanged", appid, order.out_trade_no, exc)
    return True


def refund_order(storage: Storage, client: AlipayClient, order: Order, reason: str | None = None) -> Order:
    """Refund a paid order in full: its out_request_no is stored first and reused on every
    retry (Alipay refunds one request number once), and the order becomes refunded once
    Alipay says so. AlipayError / AlipayUnavailable propagate; the order is unchanged
    then, and a retry is safe. Blocking: an async caller runs it in a thread."""
    if Status.REFUNDED not in orders.TRANSITIONS[order.status]:
        raise orders.IllegalTransition(order.status, Status.REFUNDED)
    if order.refund_request_no is None:
        order = orders.set_refund_request_no(storage, order, f"{order.out_trade_no}R")
    assert order.refund_request_no is not None
    client.trade_refund(out_trade_no=order.out_trade_no, refund_amount=yuan_text(order.total),
                        out_request_no=order.refund_request_no, refund_reason=reason)
    refunded, _ = orders.transition(storage, order.id, Status.REFUNDED)
    return refunded


def ask_alipay(storage: Storage, client: AlipayClient, order: Order, announce: Announce = tell_nobody) -> Order:
    """The order after recording what alipay.trade.query says of its trade (as a
    notification would be); unchanged when Alipay does not know it (ACQ.TRADE_NOT_EXIST),
    refuses or does not answer."""
    try:
        state = client.trade_query(order.out_trade_no)
    except (AlipayError, AlipayUnavailable) as exc:
        LOG.info("app %s: order %s: trade.query gave no state (%s)", order.appid, order.out_trade_no, exc)
        return order
    settle(storage, order.appid, {"out_trade_no": state.out_trade_no, "trade_no": state.trade_no,
                                  "trade_status": state.trade_status, "total_amount": state.total_amount}, announce)
    return orders.find(storage, order.appid, order.out_trade_no) or order


def close_unpaid(storage: Storage, client: AlipayClient, order: Order, announce: Announce = tell_nobody) -> Order:
    """Settle an order whose time to pay is over, by what Alipay says of its trade
    (alipay.trade.query): paid -> paid; still WAIT_BUYER_PAY -> alipay.trade.close, then
    closed; TRADE_CLOSED, or no trade at all (ACQ.TRADE_NOT_EXIST) -> closed, its stock
    given back. Unchanged while Alipay does not answer (the next run tries again)."""
    try:
        state = client.trade_query(order.out_trade_no)
    except AlipayUnavailable as exc:
        LOG.info("app %s: order %s: trade.query did not answer (%s)", order.appid, order.out_trade_no, exc)
        return order
    except AlipayError as exc:
        if exc.sub_code != TRADE_NOT_EXIST:
            LOG.warning("app %s: order %s: trade.query refused (%s)", order.appid, order.out_trade_no, exc)
            return order
        return _close(storage, order)  # Alipay never made the trade: nothing can pay it
    if state.trade_status == WAIT_BUYER_PAY:
        try:
            client.trade_close(order.out_trade_no)
        except AlipayUnavailable:
            return order
        except AlipayError as exc:
            # Paid (or closed) between the query and the close: what Alipay says now decides.
            LOG.info("app %s: order %s: trade.close refused (%s); asking again", order.appid, order.out_trade_no, exc)
            return ask_alipay(storage, client, order, announce)
        state = replace(state, trade_status=TRADE_CLOSED)
    settle(storage, order.appid, {"out_trade_no": state.out_trade_no, "trade_no": state.trade_no,
                                  "trade_status": state.trade_status, "total_amount": state.total_amount}, announce)
    return orders.find(storage, order.appid, order.out_trade_no) or order


def _close(storage: Storage, order: Order) -> Order:
    try:
        closed, _ = orders.transition(storage, order.id, Status.CLOSED)
    except orders.IllegalTransition as exc:
        LOG.error("app %s: order %s: %s; left unchanged", order.appid, order.out_trade_no, exc)
        return order
    return closed


def reconcile(storage: Storage, clients: Mapping[str, AlipayClient], pay_within: Mapping[str, timedelta],
              announce: Announce = tell_nobody) -> int:
    """Settle (`close_unpaid`) every order still created after its app's time to pay
    (`pay_within`: app id -> ordering.pay_within_minutes): a payment whose notification
    was lost marks its order paid, an order never paid is closed and gives its stock
    back. How many orders changed."""
    changed, now = 0, storage.clock()
    for appid, window in pay_within.items():
        client = clients.get(appid)
        if client is None:
            continue
        for order in orders.unpaid_before(storage, appid, now - window):
            changed += close_unpaid(storage, client, order, announce).status != order.status
    return changed


def products_gone(storage: Storage, appid: str, products: Sequence[CatalogueProduct]) -> list[str]:
    """The limited products of app `appid` with no units left (GET content's soldOut):
    by the count kept since the first order, or by the spec's stock of 0 before one. No
    query for a catalogue without limited products."""
    limited = {p.id: p.stock for p in products if p.stock is not None}
    if not limited:
        return []
    left = orders.remaining_stock(storage, appid, limited)
    return [product for product, stock in limited.items() if left.get(product, stock) <= 0]


def pay_windows(sections: Mapping[str, Mapping[str, object]]) -> dict[str, timedelta]:
    """App id -> its time to pay, for every app that takes orders (`sections`: each
    app's spec sections)."""
    return {appid: timedelta(minutes=section.pay_within_minutes) for appid, by_name in sections.items()
            if isinstance(section := by_name.get("ordering"), OrderingSection)}


def reconcile_task(context: TaskContext) -> None:
    """The job queue's run of `reconcile`, every minute."""
    changed = reconcile(context.storage, context.clients, pay_windows(context.sections), context.announce)
    if changed:
        LOG.info("reconcile: %d unpaid orders settled", changed)


ENDPOINTS = (Endpoint(CREATE_ORDER, create_order), Endpoint(GET_ORDER, get_order),
             Endpoint(MY_ORDERS, list_my_orders), Endpoint(NOTIFY, alipay_notify))
TASKS = (PeriodicTask("ordering.reconcile", reconcile_task, cron="* * * * *"),
         PeriodicTask("ordering.order_center", order_center_task, cron="* * * * *"))
