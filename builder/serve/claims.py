"""Claiming a coupon: reserve stock, then have Alipay issue the voucher, exactly once.

1. `Storage.reserve`, one transaction: the Idempotency-Key's earlier claim if there is
   one; else the new-customer rule (for such coupons), the per-user limit and the stock
   are checked and a unit reserved, and the claim is stored pending with a fresh
   out_biz_no, BEFORE Alipay is asked anything.
2. `alipay.marketing.activity.ordervoucher.send` with that out_biz_no. Alipay answers a
   repeat of an out_biz_no with the voucher it already issued, so the call is retried
   with the same out_biz_no (never a new one) when its outcome is unknown: no answer
   (AlipayUnavailable: timeout, connection, HTTP error, 20000) or an answer whose
   signature does not verify. Attempts are bounded; after the last the claim stays
   pending, the client gets 503, and the same Idempotency-Key retries it later.
3. Issued: the voucher code is recorded. Refused: the claim fails and its unit of stock
   is given back, in one transaction.

Claims routed through Alipay's coupon plugin stop after step 1: the client gets the
out_biz_no and the plugin issues the voucher.

Storage and the SDK block, so they run in worker threads; the event loop only waits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import anyio
from anyio import to_thread

from builder.serve.alipay_client import AlipayClient
from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.api_models import ClaimReply, ClaimResult
from builder.serve.storage import Claim, ClaimError, NewClaim, Route, Status, Storage
from plugins.coupon.models import Coupon

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` calls to Alipay at most per request; `delays[i]` seconds before retry i+1
    (the last delay repeats)."""

    attempts: int = 3
    delays: tuple[float, ...] = (0.2, 1.0)

    def __post_init__(self) -> None:
        if self.attempts < 1 or not self.delays or min(self.delays) < 0:
            raise ValueError("a retry policy makes at least one attempt and waits no negative time")

    def delay(self, retry: int) -> float:
        return self.delays[min(retry, len(self.delays)) - 1]


class KeyReused(Exception):
    """The Idempotency-Key already made a claim for another request (another coupon or chInfo)."""


def new_out_biz_no() -> str:
    """A unique out_biz_no: 32 hex digits (Alipay takes letters and digits)."""
    return uuid.uuid4().hex


async def claim_new(storage: Storage, client: AlipayClient, new: NewClaim, coupon: Coupon,
                    retry: RetryPolicy) -> Claim:
    """Reserve and settle a claim; or, when its Idempotency-Key made a claim before,
    resume that one."""
    reserved = await to_thread.run_sync(lambda: storage.reserve(
        new, out_biz_no=new_out_biz_no(), stock=coupon.stock, per_user_limit=coupon.per_user_limit,
        new_customers_only=coupon.audience == "new_customers"))
    return await resume(storage, client, reserved, new.coupon_id, new.ch_info, retry)


async def resume(storage: Storage, client: AlipayClient, earlier: Claim, coupon_id: str, ch_info: str | None,
                 retry: RetryPolicy) -> Claim:
    """The claim an Idempotency-Key made, asked for again: as it stands, after another
    try at Alipay if it is still pending. KeyReused when the key made it for another
    request."""
    if (earlier.coupon_id, earlier.ch_info) != (coupon_id, ch_info):
        raise KeyReused(earlier.idempotency_key)
    if earlier.status is Status.PENDING and earlier.route is Route.SEND:
        return await _settle(storage, client, earlier, retry)
    return earlier


async def _settle(storage: Storage, client: AlipayClient, pending: Claim, retry: RetryPolicy) -> Claim:
    """Ask Alipay for the pending claim's voucher and record the outcome; the claim,
    still pending when every attempt ended without a verified answer."""
    user = pending.user
    for attempt in range(retry.attempts):
        if attempt:
            await anyio.sleep(retry.delay(attempt))
        try:
            voucher_code = await to_thread.run_sync(lambda: client.send_order_voucher(
                pending.activity_id, pending.out_biz_no, ch_info=pending.ch_info,
                user_id=user.id if user.kind == "user_id" else None,
                open_id=user.id if user.kind == "open_id" else None))
        except (AlipayUnavailable, UnverifiedResponse):
            LOG.warning("claim %s: no verified answer from Alipay (attempt %d of %d)", pending.id, attempt + 1,
                        retry.attempts)
            continue
        except AlipayError as refused:
            LOG.info("claim %s: Alipay refused (%s %s); stock given back", pending.id, refused.code, refused.sub_code)
            return await to_thread.run_sync(storage.mark_refused, pending, refused.sub_code or refused.code)
        LOG.info("claim %s: issued", pending.id)
        return await to_thread.run_sync(storage.mark_issued, pending, voucher_code)
    return pending


# The status, result and wording of a failed claim, by why it failed.
FAILURES: Mapping[ClaimError, tuple[int, ClaimResult, str]] = {
    ClaimError.SOLD_OUT: (409, "SOLD_OUT", "no stock left"),
    ClaimError.LIMIT_REACHED: (409, "LIMIT_REACHED", "this user has claimed as many as the coupon allows"),
    ClaimError.NOT_ELIGIBLE: (409, "NOT_ELIGIBLE", "the coupon is for new customers, and this user has claimed "
                                                   "another coupon of this mini-program before"),
    ClaimError.ALIPAY_REFUSED: (409, "REFUSED", "Alipay refused to issue the voucher"),
}


def answer(claim: Claim) -> tuple[int, ClaimReply]:
    """The HTTP status and body for a claim as it stands: the same every time it is asked."""
    claim_id, coupon_id = str(claim.id), claim.coupon_id
    if claim.status is Status.ISSUED:
        return 201, ClaimReply(result="CLAIMED", claim_id=claim_id, coupon_id=coupon_id,
                               voucher_code=claim.voucher_code, message="issued")
    if claim.status is Status.PENDING and claim.route is Route.PLUGIN:
        return 201, ClaimReply(result="RESERVED", claim_id=claim_id, coupon_id=coupon_id,
                               activity_id=claim.activity_id, out_biz_no=claim.out_biz_no,
                               message="reserved: claim it with Alipay's coupon plugin")
    if claim.status is Status.PENDING:
        return 503, ClaimReply(result="PENDING", claim_id=claim_id, coupon_id=coupon_id,
                               message="Alipay did not answer; retry with the same Idempotency-Key")
    assert claim.error is not None  # a failed claim always records why
    status, result, message = FAILURES[claim.error]
    return status, ClaimReply(result=result, claim_id=claim_id, coupon_id=coupon_id,
                              alipay_sub_code=claim.alipay_sub_code, message=message)
