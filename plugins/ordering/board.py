"""The merchant's order board: a web page served by `mpforge serve` (through the
`mpforge_serve_pages` hook) where the shop's staff see each store's orders live and move
them along: 接单 accept, 出餐 ready, 完成 complete, 退款 refund.

Pages and files (no build step, nothing from a CDN):

* `GET /merchant/{appid}/orders`: the board, or the login form (builder.serve.staff_login,
  the core's, shared by every merchant page) without a staff or manager session.
* `GET /merchant/{appid}/orders/static/{name}`: board.js, board.css.

The JSON the page calls (errors as the API's: `{"error": {"code", "message", ...}}`):

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
every request a valid staff (or manager) session cookie (builder.serve.staff_session). These routes are not in the
OpenAPI document: that describes the mini-program's API under /api/v1/.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from string import Template

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.business_events import ORDER_READY, ORDER_REFUNDED
from builder.serve.plugin_api import ApiError, BusinessEvent, serve_api
from builder.serve.staff_login import merchant_page
from builder.serve.staff_session import require_role, require_same_origin
from builder.serve.storage import Storage

from . import orders
from .board_orders import ACTIONS, board_json, cursor_of, store_orders
from .orders import Order, Status
from .serve import ordering_of, refund_order

LOG = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
FILES = {"board.js": "text/javascript; charset=utf-8", "board.css": "text/css; charset=utf-8"}
NO_STORE = {"Cache-Control": "no-store"}
REFUND_REASON = "商家退款"


class Board:
    """The board's routes and the page files they serve."""

    def __init__(self, *, static: Path = STATIC) -> None:
        self.page_html = Template((static / "board.html").read_text("utf-8"))
        self.files = {name: (static / name).read_bytes() for name in FILES}

    def routes(self) -> list[BaseRoute]:
        return [Route("/merchant/{appid}/orders", self.page, methods=["GET"]),
                Route("/merchant/{appid}/orders/static/{name}", self.static, methods=["GET"]),
                Route("/merchant/{appid}/orders/feed", self.feed, methods=["GET"]),
                Route("/merchant/{appid}/orders/{order_id}/{action}", self.act, methods=["POST"])]

    async def page(self, request: Request) -> Response:
        api = serve_api(request)
        merchant = api.merchant(request)
        ordering_of(merchant)
        return merchant_page(request, merchant, "订单看板", "staff", api.clock(), self.page_html,
                             name=merchant.name, appid=merchant.appid)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in FILES:
            raise ApiError(404, "not_found", "the order board has no such file")
        return Response(self.files[name], media_type=FILES[name], headers={"Cache-Control": "no-cache"})

    async def feed(self, request: Request) -> Response:
        api = serve_api(request)
        merchant = api.merchant(request)
        ordering_of(merchant)
        now = api.clock()
        require_role(request, merchant.appid, "staff", now)
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
        require_same_origin(request)
        require_role(request, merchant.appid, "staff", api.clock())
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
        kind = {Status.READY: ORDER_READY, Status.REFUNDED: ORDER_REFUNDED}.get(moved.status)
        if kind is not None and moved.user.kind != orders.FORGOTTEN_KIND:  # a forgotten user: no one to tell
            store_name = dict(merchant.store_names).get(moved.store, moved.store)
            event = BusinessEvent(appid=moved.appid, user=moved.user, kind=kind, ref=moved.out_trade_no,
                                  at=api.clock(), amount_fen=moved.total if kind == ORDER_REFUNDED else 0,
                                  data=(("store", moved.store), ("store_name", store_name)))
            await to_thread.run_sync(api.announce, event)
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
