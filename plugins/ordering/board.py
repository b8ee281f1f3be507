"""The merchant's order board: a web page served by `mpforge serve` (through the
`mpforge_serve_pages` hook) where the shop's staff see each store's orders live and move
them along: 接单 accept, 出餐 ready, 完成 complete, 退款 refund.

Pages and files (no build step, nothing from a CDN):

* `GET /merchant/{appid}/orders`: the board, or its login form without a staff session.
* `GET /merchant/{appid}/static/{name}`: board.js, board.css, login.js.

The JSON the page calls (errors as the API's: `{"error": {"code", "message", ...}}`):

* `POST /merchant/{appid}/login`, body `{"token": "<staff token>"}`: 204 and the staff
  session cookie (board_session.py); 401 `wrong_staff_token`; 403 `staff_login_disabled`
  (no MPFORGE_STAFF_TOKEN_<appid> on the server) or `cross_origin`; 429
  `too_many_logins` with Retry-After (5 attempts per address, then one per 12 s, per
  process).
* `POST /merchant/{appid}/logout`: 204, the cookie cleared.
* `GET /merchant/{appid}/orders/feed?store=<id>&since=<cursor>`: `{"store", "stores", "storeNames",
  "orders", "cursor", "full"}`. Without `since` (`full`: true) the store's orders of the
  day and any earlier one still open; with the cursor of the previous answer, the orders
  changed since (board_orders.py). The page polls it every 2 seconds. Each order:
  `{"id", "status", "store", "mode", "table", "lines": [{"name", "quantity", "amount",
  "choices": [names]}], "total" (fen), "totalText" (yuan), "createdAt", "paidAt",
  "updatedAt", "actions"}`; `actions` lists only the transitions orders.TRANSITIONS
  allows from its status. 401 `login_required`; 404 `unknown_store`; 400
  `invalid_cursor`.
* `POST /merchant/{appid}/orders/{order_id}/{action}` (accept, ready, complete,
  refund): 200 `{"order"}` moved. 409 `conflict` with `{"order"}` as it is now when the
  move is no longer allowed (another device acted first); 404 `unknown_order`; refund:
  alipay.trade.refund of the whole total (serve.refund_order), 502 `alipay_refused`
  with Alipay's reason in the message and error.alipaySubCode, 503
  `alipay_unavailable` (nothing changed; try again).

Every POST must carry an Origin naming this server (403 `cross_origin` otherwise), and
every request but the login a valid staff session cookie. These routes are not in the
OpenAPI document: that describes the mini-program's API under /api/v1/.
"""

from __future__ import annotations

import hmac
import logging
import math
from datetime import datetime
from html import escape
from pathlib import Path
from string import Template

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.plugin_api import ApiError, read_json, serve_api
from builder.serve.rate_limit import TokenBuckets
from builder.serve.storage import Storage

from . import board_session, orders
from .board_orders import ACTIONS, board_json, cursor_of, store_orders
from .orders import Order, Status
from .serve import ordering_of, refund_order

LOG = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
FILES = {"board.js": "text/javascript; charset=utf-8", "login.js": "text/javascript; charset=utf-8",
         "board.css": "text/css; charset=utf-8"}
NO_STORE = {"Cache-Control": "no-store"}
# The page loads its own script and style only, talks to its own server only, and is framed by no one.
PAGE_HEADERS = {**NO_STORE, "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                                                       "connect-src 'self'; img-src 'self' data:; "
                                                       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
LOGIN_BODY_BYTES = 4096
REFUND_REASON = "商家退款"


class Board:
    """The board's routes and what they keep while the app runs: the login attempts'
    token buckets (per process, as builder.serve.rate_limit says) and the page files."""

    def __init__(self, *, login_burst: float = 5, login_per_second: float = 1 / 12, static: Path = STATIC) -> None:
        self.logins = TokenBuckets(login_burst, login_per_second)
        self.pages = {name: Template((static / f"{name}.html").read_text("utf-8")) for name in ("board", "login")}
        self.files = {name: (static / name).read_bytes() for name in FILES}

    def routes(self) -> list[BaseRoute]:
        return [Route("/merchant/{appid}/orders", self.page, methods=["GET"]),
                Route("/merchant/{appid}/static/{name}", self.static, methods=["GET"]),
                Route("/merchant/{appid}/login", self.login, methods=["POST"]),
                Route("/merchant/{appid}/logout", self.logout, methods=["POST"]),
                Route("/merchant/{appid}/orders/feed", self.feed, methods=["GET"]),
                Route("/merchant/{appid}/orders/{order_id}/{action}", self.act, methods=["POST"])]

    async def page(self, request: Request) -> Response:
        api = serve_api(request)
        merchant = api.merchant(request)
        ordering_of(merchant)
        try:
            board_session.require_staff(request, merchant.appid, api.clock())
            name = "board"
        except ApiError:  # no session, or the login is off: the form says which when used
            name = "login"
        html = self.pages[name].substitute(name=escape(merchant.name), appid=escape(merchant.appid))
        return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in FILES:
            raise ApiError(404, "not_found", "the order board has no such file")
        return Response(self.files[name], media_type=FILES[name], headers={"Cache-Control": "no-cache"})

    async def login(self, request: Request) -> Response:
        api = serve_api(request)
        merchant = api.merchant(request)
        board_session.require_same_origin(request)
        token = board_session.staff_token(merchant.appid)
        address = request.client.host if request.client else "-"
        wait = self.logins.take(f"{merchant.appid} {address}")
        if wait:
            seconds = math.ceil(wait)
            raise ApiError(429, "too_many_logins", f"too many login attempts; try again in {seconds} s",
                           headers={"Retry-After": str(seconds)})
        body = await read_json(request, LOGIN_BODY_BYTES)
        given = body.get("token") if isinstance(body, dict) else None
        if not isinstance(given, str) or not hmac.compare_digest(given.strip().encode("utf-8"),
                                                                 token.encode("utf-8")):
            LOG.warning("app %s: a wrong staff token at the order board's login from %s", merchant.appid, address)
            raise ApiError(401, "wrong_staff_token", "this is not the shop's staff token; ask the manager for it "
                                                     f"(the value of MPFORGE_STAFF_TOKEN_{merchant.appid} on the "
                                                     "server)")
        value = board_session.issue(merchant.appid, token, api.clock())
        max_age = int(board_session.SESSION_TTL.total_seconds())
        return Response(status_code=204, headers={
            **NO_STORE, "Set-Cookie": board_session.set_cookie_header(request, merchant.appid, value, max_age)})

    async def logout(self, request: Request) -> Response:
        merchant = serve_api(request).merchant(request)
        board_session.require_same_origin(request)
        return Response(status_code=204, headers={
            **NO_STORE, "Set-Cookie": board_session.set_cookie_header(request, merchant.appid, "", 0)})

    async def feed(self, request: Request) -> Response:
        api = serve_api(request)
        merchant = api.merchant(request)
        ordering_of(merchant)
        now = api.clock()
        board_session.require_staff(request, merchant.appid, now)
        store = request.query_params.get("store") or merchant.stores[0]
        if store not in merchant.stores:
            raise ApiError(404, "unknown_store", f"no store {store!r}; the stores are {', '.join(merchant.stores)}")
        since = _cursor(request.query_params.get("since"))
        found = await to_thread.run_sync(store_orders, api.storage, merchant.appid, store, now, since)
        return JSONResponse({"store": store, "stores": list(merchant.stores),
                             "storeNames": dict(merchant.store_names),
                             "full": since is None,
                             "cursor": cursor_of(found, since, now), "orders": [board_json(o) for o in found]},
                            headers=NO_STORE)

    async def act(self, request: Request) -> Response:
        api = serve_api(request)
        merchant = api.merchant(request)
        ordering_of(merchant)
        board_session.require_same_origin(request)
        board_session.require_staff(request, merchant.appid, api.clock())
        wanted = ACTIONS.get(request.path_params["action"])
        if wanted is None:
            raise ApiError(404, "unknown_action", f"the actions are {', '.join(ACTIONS)}")
        order_id = request.path_params["order_id"]
        order = await to_thread.run_sync(orders.find, api.storage, merchant.appid, order_id)
        if order is None or order.status == Status.CREATED:
            raise ApiError(404, "unknown_order", f"no paid order {order_id!r} of this shop")
        client = api.clients[merchant.appid]
        try:
            if wanted == Status.REFUNDED:
                moved = await to_thread.run_sync(lambda: refund_order(api.storage, client, order, REFUND_REASON))
            else:
                moved, changed = await to_thread.run_sync(lambda: orders.transition(api.storage, order.id, wanted))
                if not changed:  # another device moved it there first
                    return await self._conflict(api.storage, order, wanted)
        except orders.IllegalTransition:
            return await self._conflict(api.storage, order, wanted)
        except UnverifiedResponse:
            raise ApiError(502, "alipay_unverified", "Alipay's answer did not verify; nothing changed (check the "
                                                     "server's Alipay public key)") from None
        except AlipayError as refused:
            raise ApiError(502, "alipay_refused", f"Alipay refused the refund: {refused.sub_msg or refused.msg}; "
                                                  "the order is unchanged",
                           alipay_sub_code=refused.sub_code or refused.code) from None
        except AlipayUnavailable:
            raise ApiError(503, "alipay_unavailable", "Alipay did not answer; nothing changed, try the refund again",
                           headers={"Retry-After": "1"}) from None
        LOG.info("app %s: order %s %s on the order board", merchant.appid, order.out_trade_no, moved.status.value)
        return JSONResponse({"order": board_json(moved)}, headers=NO_STORE)

    @staticmethod
    async def _conflict(storage: Storage, order: Order, wanted: Status) -> Response:
        """409 with the order as it is now, which the board then shows."""
        current = await to_thread.run_sync(orders.find, storage, order.appid, order.out_trade_no)
        shown = current or order
        return JSONResponse({"error": {"code": "conflict",
                                       "message": f"order {order.out_trade_no} is {shown.status.value} now and "
                                                  f"cannot become {wanted.value}; the board shows it as it is"},
                             "order": board_json(shown)}, status_code=409, headers=NO_STORE)


def _cursor(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        since = datetime.fromisoformat(text)
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        raise ApiError(400, "invalid_cursor", "since must be the cursor of the previous answer (an ISO time with "
                                              "its offset); leave it out to read everything again")
    return since
