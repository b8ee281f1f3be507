"""The merchant's customer view: a web page served by `mpforge serve` (through the
`mpforge_serve_pages` hook) where the shop's manager sees how visitors become members
and regulars, who the customers are, and the spec's segments, which they can export and
push to 棋盘密云.

Pages and files (no build step, nothing from a CDN):

* `GET /merchant/{appid}/customers`: the page, or the login form (builder.serve.staff_login)
  without a manager session; a staff session gets the form with the refusal, status 403.
* `GET /merchant/{appid}/customers/static/{name}`: customers.js, customers.css, and
  chart.umd.min.js (Chart.js 4.6.1, MIT, vendored from npm's chart.js package:
  static/vendor/, with its licence).

The JSON the page calls (errors as the API's: `{"error": {"code", "message"}}`; 401
`login_required`, 403 `manager_only` / `staff_login_disabled`; 404 `no_membership`
for an app without the membership section):

* `GET /merchant/{appid}/customers/funnel?from=YYYY-MM-DD&to=YYYY-MM-DD` (China dates,
  both included; default today; at most 92 days): `{"from", "to", "steps": [{"id",
  "name"}], "total": [counts], "channels": [{"key", "name", "counts"}], "entryPoints":
  [...]}`, the counts in `steps` order (funnel.py says what each step counts). 400
  `invalid_dates`.
* `GET /merchant/{appid}/customers/list`: `{"total", "customers": [{"kind", "user",
  "member", "level", "levelName", "points", "paidOrders", "lastVisit", "segments"}]}`:
  the 200 most recent visitors, with the ids of the segments each is in.
* `GET /merchant/{appid}/customers/segments`: `{"segments": [{"id", "name",
  "description", "count", "crowd": {"code", "users", "pushedAt"} | null}]}`.
* `GET /merchant/{appid}/customers/segments/{id}.csv`: the segment's customers (ids as
  stored, level, points, paid orders, last visit in China time), UTF-8 with a BOM, a
  cell that a spreadsheet would read as a formula prefixed with '. 404 `unknown_segment`.
* `POST /merchant/{appid}/customers/segments/{id}/push`: the segment pushed to 棋盘密云
  (crowds.py): 200 `{"crowdCode", "created", "added", "removed", "inCrowd",
  "unpushable", "unpushableReason"}`; 409 `nothing_to_push` (no crowd yet and no
  pushable customer); 502 `alipay_refused` (error.alipaySubCode); 503
  `alipay_unavailable`. Must carry an Origin naming this server (403 `cross_origin`).

These routes are not in the OpenAPI document: that describes the mini-program's API
under /api/v1/.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import date, datetime, time, timedelta
from pathlib import Path
from string import Template
from typing import Any

from anyio import to_thread
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.content import CHINA, china_today
from builder.serve.merchant import Merchant
from builder.serve.plugin_api import Api, ApiError, serve_api
from builder.serve.staff_login import merchant_page
from builder.serve.staff_session import require_role, require_same_origin
from builder.serve.storage import Storage

from . import funnel
from .crowds import UNPUSHABLE_REASON, NothingToPush, push_segment
from .models import MembershipSection, Segment
from .section import membership_of
from .segments import Customer, list_customers, segment_counts, segment_members, segment_of
from .tables import CROWDS

LOG = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
FILES = {"customers.js": ("customers.js", "text/javascript; charset=utf-8"),
         "customers.css": ("customers.css", "text/css; charset=utf-8"),
         "chart.umd.min.js": ("vendor/chart.umd.min.js", "text/javascript; charset=utf-8")}
NO_STORE = {"Cache-Control": "no-store"}
MAX_DAYS = 92
LISTED = 200
STEP_NAMES = {"visit": "访问", "follow": "关注", "claim": "领券", "member": "入会", "repeat": "复购"}
DIRECT = "直接访问"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class CustomerView:
    """The customer view's routes and the page files they serve."""

    def __init__(self, *, static: Path = STATIC) -> None:
        self.page_html = Template((static / "customers.html").read_text("utf-8"))
        self.files = {name: (static / path).read_bytes() for name, (path, _) in FILES.items()}

    def routes(self) -> list[BaseRoute]:
        prefix = "/merchant/{appid}/customers"
        return [Route(prefix, self.page, methods=["GET"]),
                Route(f"{prefix}/static/{{name}}", self.static, methods=["GET"]),
                Route(f"{prefix}/funnel", self.funnel, methods=["GET"]),
                Route(f"{prefix}/list", self.customers, methods=["GET"]),
                Route(f"{prefix}/segments", self.segments, methods=["GET"]),
                Route(f"{prefix}/segments/{{segment}}.csv", self.export, methods=["GET"]),
                Route(f"{prefix}/segments/{{segment}}/push", self.push, methods=["POST"])]

    async def page(self, request: Request) -> Response:
        api = serve_api(request)
        merchant = api.merchant(request)
        membership_of(merchant)
        return merchant_page(request, merchant, "顾客与会员", "manager", api.clock(), self.page_html,
                             name=merchant.name, appid=merchant.appid)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in FILES:
            raise ApiError(404, "not_found", "the customer view has no such file")
        return Response(self.files[name], media_type=FILES[name][1], headers={"Cache-Control": "no-cache"})

    @staticmethod
    def _manager(request: Request) -> tuple[Api, Merchant, MembershipSection]:
        api = serve_api(request)
        merchant = api.merchant(request)
        section = membership_of(merchant)
        require_role(request, merchant.appid, "manager", api.clock())
        return api, merchant, section

    async def funnel(self, request: Request) -> Response:
        api, merchant, _ = self._manager(request)
        first, last = _period(request, china_today(api.clock()))
        start = datetime.combine(first, time(), CHINA)
        end = datetime.combine(last + timedelta(days=1), time(), CHINA)
        found = await to_thread.run_sync(funnel.visitors, api.storage, merchant.appid, start, end)
        entry_names = {p.id: p.name for p in getattr(merchant.sections.get("promotion"), "entry_points", [])}
        return JSONResponse({
            "from": first.isoformat(), "to": last.isoformat(),
            "steps": [{"id": step, "name": STEP_NAMES[step]} for step in funnel.STEPS],
            "total": funnel.total(found).counts,
            "channels": [{"key": f.key, "name": f.key or DIRECT, "counts": f.counts}
                         for f in funnel.funnels(found, "channel")],
            "entryPoints": [{"key": f.key, "name": entry_names.get(f.key, f.key) if f.key else DIRECT,
                             "counts": f.counts} for f in funnel.funnels(found, "entry_point")]},
            headers=NO_STORE)

    async def customers(self, request: Request) -> Response:
        api, merchant, section = self._manager(request)
        total, found = await to_thread.run_sync(list_customers, api.storage, merchant.appid, section, api.clock(),
                                                LISTED)
        names = {level.id: level.name for level in section.levels}
        return JSONResponse({"total": total, "customers": [
            {"kind": c.user.kind, "user": c.user.id, "member": c.member, "level": c.level,
             "levelName": names.get(c.level) if c.level else None, "points": c.points, "paidOrders": c.paid_orders,
             "lastVisit": c.last_visit.isoformat(), "segments": list(c.segments)} for c in found]},
            headers=NO_STORE)

    async def segments(self, request: Request) -> Response:
        api, merchant, section = self._manager(request)
        counts = await to_thread.run_sync(segment_counts, api.storage, merchant.appid, section, api.clock())
        crowds = await to_thread.run_sync(_crowds, api.storage, merchant.appid)
        return JSONResponse({"segments": [
            {"id": s.id, "name": s.name, "description": s.description, "count": counts[s.id],
             "crowd": crowds.get(s.id)} for s in section.segments]}, headers=NO_STORE)

    async def export(self, request: Request) -> Response:
        api, merchant, section = self._manager(request)
        segment = _segment(section, request)
        now = api.clock()
        found = await to_thread.run_sync(segment_members, api.storage, merchant.appid, section, segment, now)
        names = {level.id: level.name for level in section.levels}
        filename = f"segment-{segment.id}-{china_today(now).isoformat()}.csv"
        return Response("\ufeff" + segment_csv(found, names), media_type="text/csv; charset=utf-8",
                        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"',
                                 "X-Content-Type-Options": "nosniff"})

    async def push(self, request: Request) -> Response:
        require_same_origin(request)
        api, merchant, section = self._manager(request)
        segment = _segment(section, request)
        client = api.clients[merchant.appid]
        try:
            pushed = await to_thread.run_sync(push_segment, api.storage, client, merchant.appid, section, segment,
                                              api.clock())
        except NothingToPush as nothing:
            raise ApiError(409, "nothing_to_push", f"segment {segment.id!r} has no customer 棋盘密云 can take "
                                                   f"({nothing.unpushable} not pushable): {UNPUSHABLE_REASON}") \
                from None
        except UnverifiedResponse:
            raise ApiError(502, "alipay_unverified", "Alipay's answer did not verify; what was accepted before is "
                                                     "kept, push again (check the server's Alipay public key)") \
                from None
        except AlipayError as refused:
            raise ApiError(502, "alipay_refused", f"Alipay refused the crowd: {refused.sub_msg or refused.msg}; "
                                                  "what it accepted before is kept, push again once fixed",
                           alipay_sub_code=refused.sub_code or refused.code) from None
        except AlipayUnavailable:
            raise ApiError(503, "alipay_unavailable", "Alipay did not answer; what it accepted before is kept, push "
                                                      "again", headers={"Retry-After": "1"}) from None
        LOG.info("app %s: segment %s pushed to crowd %s (+%d -%d, %d unpushable)", merchant.appid, segment.id,
                 pushed.crowd_code, pushed.added, pushed.removed, pushed.unpushable)
        return JSONResponse({"crowdCode": pushed.crowd_code, "created": pushed.created, "added": pushed.added,
                             "removed": pushed.removed, "inCrowd": pushed.in_crowd, "unpushable": pushed.unpushable,
                             "unpushableReason": UNPUSHABLE_REASON if pushed.unpushable else None},
                            headers=NO_STORE)


def _period(request: Request, today: date) -> tuple[date, date]:
    """The China dates `from` and `to` the request asks (both included)."""
    try:
        first = date.fromisoformat(request.query_params.get("from") or today.isoformat())
        last = date.fromisoformat(request.query_params.get("to") or first.isoformat())
    except ValueError:
        raise ApiError(400, "invalid_dates", "from and to are dates like 2026-03-02 (China time)") from None
    if last < first or (last - first).days >= MAX_DAYS:
        raise ApiError(400, "invalid_dates", f"to must be on or after from, and the period at most {MAX_DAYS} days "
                                             f"(asked: {first} to {last})")
    return first, last


def _segment(section: MembershipSection, request: Request) -> Segment:
    segment_id = request.path_params["segment"]
    segment = segment_of(section, segment_id)
    if segment is None:
        known = ", ".join(s.id for s in section.segments) or "none"
        raise ApiError(404, "unknown_segment", f"no segment {segment_id!r}; the spec's segments are {known}")
    return segment


def _crowds(storage: Storage, appid: str) -> dict[str, dict[str, Any]]:
    with storage.engine.connect() as conn:
        rows = conn.execute(select(CROWDS).where(CROWDS.c.appid == appid))
        return {str(r.segment): {"code": r.crowd_code, "users": r.users, "pushedAt": r.pushed_at.isoformat()}
                for r in rows}


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: one starting like a formula gets a '."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def segment_csv(customers: list[Customer], level_names: dict[str, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["user_kind", "alipay_user", "member", "level", "points", "paid_orders", "last_visit"])
    for c in customers:
        writer.writerow([_cell(v) for v in (
            c.user.kind, c.user.id, "yes" if c.member else "no", level_names.get(c.level) if c.level else "",
            c.points, c.paid_orders, c.last_visit.astimezone(CHINA).isoformat(timespec="seconds"))])
    return out.getvalue()
