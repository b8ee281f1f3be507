"""A user's own data: `GET /api/v1/{appid}/me/data` shows everything the back end stores
about the session's user, `DELETE` the same path deletes it (the privacy policy page's
查看我的数据 / 删除我的数据 buttons call them; docs/privacy.md says what is kept, why and how
long).

The core's part is its tables (builder.serve.storage): the user's row (when they first
logged in), their claims and their events. Each plugin adds its own through
`mpforge_serve_user_data` and deletes it through `mpforge_serve_forget_user` (the
ordering plugin's orders, the membership plugin's points, stamps and messages).

Deleting keeps what the merchant must keep without saying whose it is: a claim keeps its
coupon, stock and voucher with the user's id replaced by a keyed hash
(`Storage.forget_user` says why: the coupon limits must still hold), a paid order its
money and lines (the ordering plugin). It is safe to repeat: a second call finds nothing
left of the user.

The session token is not revoked: tokens are signed, not stored, and valid for
`Limits.session_ttl` (two hours) at most; the mini-program drops its token, its device id
and its queued events after the deletion. Revoking would not log the user out anyway:
the mini-program's next request gets a new token from a silent auth code (auth_base). What
a token reaches after the deletion is an empty account, which fills again only with what
the user does next.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from anyio import to_thread
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from builder.hooks import Hooks
from builder.serve.api_models import ErrorReply, Reply
from builder.serve.merchant import Merchant
from builder.serve.openapi import Operation
from builder.serve.storage import AlipayUser, Claim, Event, Storage, UserRecord

ERROR = (ErrorReply,)
PATH = "/api/v1/{appid}/me/data"


class DataUser(Reply):
    kind: str = Field(description="user_id or open_id: which of Alipay's ids the app knows the user by")
    id: str = Field(description="the user's id of that kind")
    first_seen: datetime | None = Field(description="when the user first logged in to this mini-program (null: "
                                                    "not recorded)")


class DataClaim(Reply):
    coupon_id: str
    status: str = Field(description="pending, issued or failed")
    voucher_code: str | None = Field(description="Alipay's voucher number, once issued")
    error: str | None = Field(description="why the claim failed (SOLD_OUT, LIMIT_REACHED, ...)")
    ch_info: str | None = Field(description="the channel the claim came from, as the app sent it")
    created_at: datetime


class DataEvent(Reply):
    kind: str
    at: datetime
    scene: str | None
    channel: str | None
    entry_point: str | None
    store: str | None
    table_no: str | None
    ch_info: str | None
    page: str | None


class UserDataReply(Reply):
    """The core's keys; each plugin adds its own (e.g. orders, membership)."""

    user: DataUser
    claims: list[DataClaim] = Field(description="the user's coupon claims, newest first")
    events: list[DataEvent] = Field(description="what the app recorded while the user was logged in (visits, "
                                                "scans of entry points), oldest first")


SESSION_ERRORS = {401: ("no valid session token", ERROR), 404: ("unknown app id", ERROR),
                  503: ("the database is unavailable; nothing was changed, retry later", ERROR)}
SHOW = Operation(
    "getMyData", "GET", PATH, "Everything the back end stores about the session's user",
    session="required",
    responses={200: ("the core's records of the user (user, claims, events) and every plugin's, each under its "
                     "own key (e.g. orders, membership); never another user's", (UserDataReply,)),
               **SESSION_ERRORS})
FORGET = Operation(
    "deleteMyData", "DELETE", PATH, "Delete what the back end stores about the session's user",
    session="required",
    responses={204: ("deleted: the user's row, events and every plugin's records of them are gone; what the "
                     "merchant must keep is kept without the user's identity (claims: for coupon limits and "
                     "stock; paid orders: for the accounts); safe to repeat. The session token keeps working "
                     "until it expires, on an empty account", ()),
               **SESSION_ERRORS})


class _Shared(Protocol):
    """What these routes use of the app's builder.serve.app.Api (which imports this
    module, so it is named by its shape here)."""

    storage: Storage
    plugins: Hooks

    def merchant(self, request: Request) -> Merchant: ...

    def user(self, request: Request, appid: str, *, required: bool) -> AlipayUser | None: ...


def _claim(claim: Claim) -> DataClaim:
    return DataClaim(coupon_id=claim.coupon_id, status=claim.status.value, voucher_code=claim.voucher_code,
                     error=claim.error.value if claim.error else None, ch_info=claim.ch_info,
                     created_at=claim.created_at)


def _event(event: Event) -> DataEvent:
    return DataEvent(kind=event.kind, at=event.at, scene=event.scene, channel=event.channel,
                     entry_point=event.entry_point, store=event.store, table_no=event.table_no,
                     ch_info=event.ch_info, page=event.page)


def answer(user: AlipayUser, record: UserRecord, plugins_data: dict[str, Any]) -> dict[str, Any]:
    """The GET answer: the core's keys, then the plugins' (a plugin cannot replace the
    core's keys)."""
    core = UserDataReply(user=DataUser(kind=user.kind, id=user.id, first_seen=record.first_seen),
                         claims=[_claim(c) for c in record.claims], events=[_event(e) for e in record.events])
    shown = core.model_dump(mode="json")
    return {**plugins_data, **shown}


class UserData:
    """The two routes' handlers; `shared(request)` is the app's Api."""

    def __init__(self, shared: Callable[[Request], _Shared]) -> None:
        self._shared = shared

    def _who(self, request: Request) -> tuple[_Shared, str, AlipayUser]:
        api = self._shared(request)
        appid = api.merchant(request).appid
        user = api.user(request, appid, required=True)
        assert user is not None  # required=True raises instead
        return api, appid, user

    async def show(self, request: Request) -> Response:
        api, appid, user = self._who(request)

        def collect() -> dict[str, Any]:
            return answer(user, api.storage.user_record(appid, user),
                          api.plugins.serve_user_data(api.storage, appid, user))

        return JSONResponse(await to_thread.run_sync(collect), headers={"Cache-Control": "no-store"})

    async def forget(self, request: Request) -> Response:
        api, appid, user = self._who(request)

        def forget() -> None:
            # The core's first: if a plugin fails, the call fails and a retry finishes
            # the work, each part being safe to repeat.
            api.storage.forget_user(appid, user)
            api.plugins.serve_forget_user(api.storage, appid, user)

        await to_thread.run_sync(forget)
        return Response(status_code=204)
