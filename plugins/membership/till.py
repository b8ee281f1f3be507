"""The till's stamp code: a web page served by `mpforge serve` (through the
`mpforge_serve_pages` hook) that a counter tablet keeps open, showing the stamp card's
current code as a QR for customers to scan (stamps_api.py says what the code is and
how a scan becomes a stamp).

Pages and files (no build step, nothing from a CDN):

* `GET /merchant/{appid}/till`: the page, or the login form (builder.serve.staff_login,
  shared by every merchant page) without a staff or manager session.
* `GET /merchant/{appid}/till/static/{name}`: till.js, till.css.

The JSON the page polls every 1.5 seconds (errors as the API's: `{"error": {"code",
"message", ...}}`):

* `GET /merchant/{appid}/till/code?store=<id>&since=<nonce>`: `{"store", "stores",
  "storeNames", "code", "nonce", "expiresAt", "secondsLeft", "codeSeconds", "used",
  "qr"}`. `since`: the nonce of the code the page shows. The server decides which code
  is current: the same one (the same text: codes are signed, not stored) while it is
  unused and unexpired, else a new one; `used` is true when the code of `since` was
  scanned for a stamp (the page says 已集点). `qr` is the code as an SVG `data:` URI
  (segno), which the page's strict Content-Security-Policy allows as an image. A
  `since` that is not a nonce of this server's, or claims a longer life than the stamp
  card's `code_seconds`, just gets a new code. 401 `login_required`; 404
  `unknown_store`, `no_stamp_card`.

Every request needs a valid staff (or manager) session cookie
(builder.serve.staff_session); the page changes nothing, so there is no POST. These
routes are not in the OpenAPI document: that describes the mini-program's API.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from string import Template

import segno
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from builder.serve.plugin_api import ApiError, serve_api
from builder.serve.staff_login import merchant_page
from builder.serve.staff_session import require_role

from .stamps_api import TillCode, code_key, code_used, new_nonce, nonce_expiry, sign_code, stamp_card_of

STATIC = Path(__file__).parent / "static"
FILES = {"till.js": "text/javascript; charset=utf-8", "till.css": "text/css; charset=utf-8"}
NO_STORE = {"Cache-Control": "no-store"}
PAGE_NAME = "集点码"


def qr_data_uri(code: TillCode) -> str:
    """The code as a QR, an SVG `data:` URI; drawn one unit per module and scaled by the
    page (SVG stays sharp at any size). Error correction M: a phone reads it off a
    glossy screen at an angle."""
    return str(segno.make(code.text, error="m").svg_data_uri(scale=1, border=4))


class Till:
    """The till page's routes and the files they serve."""

    def __init__(self, *, static: Path = STATIC) -> None:
        self.page_html = Template((static / "till.html").read_text("utf-8"))
        self.files = {name: (static / name).read_bytes() for name in FILES}

    def routes(self) -> list[BaseRoute]:
        return [Route("/merchant/{appid}/till", self.page, methods=["GET"]),
                Route("/merchant/{appid}/till/static/{name}", self.static, methods=["GET"]),
                Route("/merchant/{appid}/till/code", self.code, methods=["GET"])]

    async def page(self, request: Request) -> Response:
        api = serve_api(request)
        merchant = api.merchant(request)
        _, card = stamp_card_of(merchant)
        return merchant_page(request, merchant, PAGE_NAME, "staff", api.clock(), self.page_html,
                             name=merchant.name, title=card.title)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in FILES:
            raise ApiError(404, "not_found", "the till page has no such file")
        return Response(self.files[name], media_type=FILES[name], headers={"Cache-Control": "no-cache"})

    async def code(self, request: Request) -> Response:
        api = serve_api(request)
        merchant = api.merchant(request)
        _, card = stamp_card_of(merchant)
        now = api.clock()
        require_role(request, merchant.appid, "staff", now)
        store = request.query_params.get("store") or merchant.stores[0]
        if store not in merchant.stores:
            raise ApiError(404, "unknown_store", f"no store {store!r}; the stores are {', '.join(merchant.stores)}")
        since = request.query_params.get("since") or ""
        shown = nonce_expiry(since)
        used = shown is not None and await to_thread.run_sync(code_used, api.storage, merchant.appid, since)
        lifetime = timedelta(seconds=card.code_seconds)
        keep = shown is not None and not used and now < shown <= now + lifetime
        nonce = since if keep else new_nonce(now + lifetime)
        current = sign_code(code_key(api), merchant.appid, store, nonce)
        return JSONResponse({"store": store, "stores": list(merchant.stores), "storeNames": dict(merchant.store_names),
                             "code": current.text, "nonce": current.nonce, "expiresAt": current.expires.isoformat(),
                             "secondsLeft": max(0, int((current.expires - now).total_seconds())),
                             "codeSeconds": card.code_seconds, "used": used, "qr": qr_data_uri(current)},
                            headers=NO_STORE)
