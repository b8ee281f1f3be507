"""The coupon plugin's part of the back end (`mpforge serve`), through the serve hooks:

* `POST /api/v1/{appid}/coupons/{coupon_id}/claims`: claim a coupon for the session's
  user, once per Idempotency-Key (builder.serve.claims says how: the stock is reserved
  in one transaction, the voucher sent with a stored out_biz_no, a claim Alipay did not
  answer settled by the job queue). A followers' coupon asks Alipay first whether the
  user follows the life account (alipay.open.public.user.follow.query, through the app's
  AlipayClient).
* `GET /api/v1/{appid}/me/claims`: the session user's vouchers and reservations.
* the sandbox gateway's alipay.marketing.activity.ordervoucher.send.

The tables these use (claims, counters) are the core's (revision 0001), as the claim
logic in builder.serve.claims and the job queue are: databases in use created them
there before plugins could add tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from builder.serve import claims
from builder.serve.alipay_client import AlipayClient
from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.api_models import ClaimReply, ClaimRequest, MyClaimsReply
from builder.serve.business_events import COUPON_CLAIMED
from builder.serve.content import china_today, my_claims
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
    ErrorReply,
    Operation,
    SandboxRefusal,
    SandboxState,
    biz_content,
    read_json,
    reply,
    serve_api,
    succeeded,
    text_field,
    user_id_of,
    validated,
)
from builder.serve.sandbox_state import Refusal
from builder.serve.storage import AlipayUser, Claim, NewClaim, Status

from .models import Coupon

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII, no spaces; a UUID fits
ORDER_VOUCHER_SEND = "alipay.marketing.activity.ordervoucher.send"
CLAIM = Operation(
    "claimCoupon", "POST", f"{PREFIX}/coupons/{{coupon_id}}/claims", "Claim a coupon for the session's user",
    request=ClaimRequest, request_required=False, session="required",
    headers={"Idempotency-Key": ("the client's id of this claim attempt (1 to 64 printable ASCII characters); a "
                                 "retry of the same attempt sends the same key and gets the same answer",
                                 f"^{IDEMPOTENCY_KEY.pattern}$")},
    responses={201: ("issued (CLAIMED), or reserved for Alipay's coupon plugin (RESERVED)", (ClaimReply,)),
               **CLIENT_ERRORS, 401: ("no valid session token", ERROR),
               403: ("the user is not in the coupon's audience, before anything is stored: error.code not_following "
                     "(a followers' coupon: Alipay says the user does not follow the life account; follow it, then "
                     "claim again), not_member (a members' coupon: the user holds no member card), not_in_segment "
                     "(a segment's coupon), or audience_not_checked (no plugin of the server can check the "
                     "audience)", ERROR),
               404: ("unknown app id or coupon id", ERROR),
               409: ("SOLD_OUT, LIMIT_REACHED, NOT_ELIGIBLE or REFUSED (a ClaimReply, stored: a replay of the key "
                     "gets it again). NOT_ELIGIBLE: a new_customers coupon, and the user has an issued or reserved "
                     "claim of another coupon of this mini-program (the server knows no other purchase history). "
                     "Or the coupon outside its dates, before anything is stored (an ErrorReply, error.code "
                     "coupon_expired or coupon_not_started)", (ClaimReply, ErrorReply)),
               422: ("the body does not validate, or the Idempotency-Key was used for another claim", ERROR),
               502: ("a followers' coupon: Alipay refused to say whether the user follows, or its answer did not "
                     "verify; nothing was stored", ERROR),
               503: ("PENDING (a ClaimReply): Alipay did not answer; retry with the same Idempotency-Key. Or the "
                     "database is unavailable, or Alipay did not answer whether the user follows (an ErrorReply; "
                     "nothing was stored)", (ClaimReply, ErrorReply))},
    response_headers={503: {"Retry-After": "seconds"}},
    parameters={"coupon_id": {"description": "a coupon id of the spec's coupon section", "schema": {"type": "string"}}})
MY_CLAIMS = Operation(
    "listMyClaims", "GET", f"{PREFIX}/me/claims", "The session user's coupons: issued vouchers and reservations",
    session="required",
    responses={200: ("the user's claims that hold a voucher (issued) or a reservation for Alipay's coupon plugin "
                     "(reserved), newest first; never another user's. A claim still waiting for Alipay is listed "
                     "once issued; one of a coupon the spec no longer has is left out", (MyClaimsReply,)),
               401: ("no valid session token", ERROR), 404: ("unknown app id", ERROR), **UNAVAILABLE})
# ordervoucher.send's business refusals in the sandbox. UNVERIFIED NAMES: the API's own
# error table (opendocs) was out of reach and no public source quotes it, so these
# sub_codes are the sandbox's; code 40004 "Business Failed" is Alipay's shape for business
# failures. The repeat rule is Alipay's (SDK AlipayMarketingActivityOrdervoucherSendModel,
# out_biz_no: "参数不变的情况下，再次请求返回与上一次相同的结果"). Callers must not branch on these
# names until they are checked against Alipay's table.
VOUCHER_REFUSALS = {
    Refusal.UNKNOWN_ACTIVITY: ("ACTIVITY_NOT_EXIST", "活动不存在"),
    Refusal.STOCK_EXHAUSTED: ("VOUCHER_STOCK_NOT_ENOUGH", "券库存不足"),
    Refusal.USER_LIMIT_REACHED: ("USER_VOUCHER_LIMIT_EXCEEDED", "用户领券数量超过限制"),
    Refusal.OUT_BIZ_NO_REUSED: ("OUT_BIZ_NO_REPEATED", "外部业务单号重复且参数不一致"),
}


async def claim(request: Request) -> Response:
    api = serve_api(request)
    merchant = api.merchant(request)
    user = api.user(request, merchant.appid, required=True)
    assert user is not None  # required=True raises instead
    key = request.headers.get("idempotency-key")
    if key is None:
        raise ApiError(400, "missing_idempotency_key", "send an Idempotency-Key header, the same on retries")
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key is 1 to 64 printable ASCII characters")
    data = await read_json(request, api.limits.max_body_bytes)
    body = validated(ClaimRequest, {} if data is None else data)
    coupon_id = request.path_params["coupon_id"]
    client, retry = api.clients[merchant.appid], api.limits.retry
    try:
        try:
            coupon = await claimable(api, merchant, coupon_id, user)
            # A replay of the key is answered as before, without asking Alipay again.
            if coupon.audience == "followers" and await to_thread.run_sync(
                    api.storage.find_claim, merchant.appid, user, key) is None:
                await require_following(client, user)
        except ApiError:
            # What may not be claimed now refuses new claims only: a replayed key
            # still gets the answer its claim had.
            earlier = await to_thread.run_sync(api.storage.find_claim, merchant.appid, user, key)
            if earlier is None:
                raise
            found = await claims.resume(api.storage, client, earlier, coupon_id, body.ch_info, retry)
        else:
            # A replay of the key is found by the reservation itself, under the user's lock.
            new = NewClaim(appid=merchant.appid, coupon_id=coupon.id, activity_id=coupon.activity_id, user=user,
                           idempotency_key=key, route=merchant.route(coupon.id), ch_info=body.ch_info)
            found = await claims.claim_new(api.storage, client, new, coupon, retry)
    except claims.KeyReused:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for another claim "
                                                      "(another coupon or chInfo); use a new key") from None
    await api.jobs.settle_later(found)  # a claim still pending: the job queue settles it
    await announce_issued(api, found)
    status, answer = claims.answer(found)
    return reply(status, answer, {"Retry-After": "1"} if status == 503 else None)


async def claimable(api: Api, merchant: Merchant, coupon_id: str, user: AlipayUser, *,
                    as_reward: bool = False) -> Coupon:
    """The coupon, when a new claim of it by `user` may go ahead today. `as_reward`: the
    membership plugin's points rewards ask, for a coupon the points pay for (audience
    reward); the claim route never may claim such a coupon by itself."""
    coupon = merchant.coupon(coupon_id)
    if coupon is None:
        raise ApiError(404, "unknown_coupon", f"no coupon {coupon_id!r} in this mini-program")
    if coupon.audience == "reward" and not as_reward:
        raise ApiError(403, "reward_only", "the coupon is a reward (for points or a full stamp card); it cannot "
                                           "be claimed by itself")
    today = china_today(api.clock())
    validity = coupon.validity
    if validity.start is not None and today < validity.start:
        raise ApiError(409, "coupon_not_started", f"the coupon can be claimed from {validity.start}")
    if validity.end is not None and today > validity.end:
        raise ApiError(409, "coupon_expired", f"the coupon could be claimed until {validity.end}")
    if coupon.audience in ("members", "segment"):
        audience = "members" if coupon.audience == "members" else f"segment:{coupon.segment}"
        inside = await to_thread.run_sync(api.plugins.serve_in_audience, api.storage, merchant.appid, user, audience,
                                          merchant.sections)
        if inside is None:
            # Issuing to anyone would give away what the merchant meant for some: refuse
            # while no plugin (membership) can say who they are.
            raise ApiError(403, "audience_not_checked", f"the coupon is for {audience}, and no plugin of this "
                                                        "server can check that; it cannot be claimed")
        if not inside:
            if coupon.audience == "members":
                raise ApiError(403, "not_member", "the coupon is for members: claim the member card first, then "
                                                  "claim again")
            raise ApiError(403, "not_in_segment", "the coupon is for a group of customers this user is not in")
    # followers: checked with Alipay by the caller; new_customers: by Storage.reserve.
    return coupon


async def announce_issued(api: Api, claim: Claim) -> None:
    """Tell the plugins a voucher was issued (coupon_claimed, ref: the out_biz_no; a
    replay announces it again, which listeners take as one)."""
    if claim.status is Status.ISSUED:
        event = BusinessEvent(appid=claim.appid, user=claim.user, kind=COUPON_CLAIMED, ref=claim.out_biz_no,
                              at=api.clock(), data=(("coupon", claim.coupon_id),))
        await to_thread.run_sync(api.announce, event)


async def require_following(client: AlipayClient, user: AlipayUser) -> None:
    """Nothing, when Alipay says the user follows the app's life account."""
    by_user_id = user.kind == "user_id"
    try:
        following = await to_thread.run_sync(lambda: client.follow_query(
            user_id=user.id if by_user_id else None, open_id=None if by_user_id else user.id))
    except UnverifiedResponse:
        raise ApiError(502, "alipay_unverified", "Alipay's answer did not verify; check the server's Alipay "
                                                 "public key") from None
    except AlipayError as refused:
        raise ApiError(502, "alipay_refused", "Alipay refused to say whether the user follows the life account",
                       alipay_sub_code=refused.sub_code or refused.code) from None
    except AlipayUnavailable:
        raise ApiError(503, "alipay_unavailable", "Alipay did not answer whether the user follows the life "
                                                  "account; retry later", headers={"Retry-After": "1"}) from None
    if not following:
        raise ApiError(403, "not_following", "the coupon is for followers of the merchant's life account: "
                                             "follow it first, then claim again")


async def list_my_claims(request: Request) -> Response:
    api = serve_api(request)
    merchant = api.merchant(request)
    user = api.user(request, merchant.appid, required=True)
    assert user is not None  # required=True raises instead
    held = await to_thread.run_sync(api.storage.held_claims, merchant.appid, user)
    _, document = await to_thread.run_sync(api.current_document, merchant)
    return reply(200, MyClaimsReply(claims=my_claims(merchant, document, held)))


def send_order_voucher(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """The sandbox's alipay.marketing.activity.ordervoucher.send: voucher_code (SDK
    AlipayMarketingActivityOrdervoucherSendResponse). Stock and the per-user limit are the
    activity's (SandboxState.add_activity); a repeat of an out_biz_no returns its voucher."""
    biz = biz_content(params)
    activity_id, out_biz_no = text_field(biz, "activity_id"), text_field(biz, "out_biz_no")
    user_id = user_id_of(state, app_id, biz)
    sent = tuple(sorted((k, json.dumps(v, ensure_ascii=False)) for k, v in biz.items() if k != "out_biz_no"))
    result = state.issue_voucher(activity_id, out_biz_no, user_id, sent)
    if isinstance(result, Refusal):
        sub_code, sub_msg = VOUCHER_REFUSALS[result]
        raise SandboxRefusal("40004", sub_code, sub_msg)
    return succeeded(voucher_code=result.voucher_code)


ENDPOINTS = (Endpoint(CLAIM, claim), Endpoint(MY_CLAIMS, list_my_claims))
SANDBOX_METHODS = {ORDER_VOUCHER_SEND: send_order_voucher}
