"""The stamp card: the till's rotating signed code, and `POST /api/v1/{appid}/membership/stamps`
where a customer's scan of it becomes a stamp.

The code is the text `mpforge-stamp:v1.<payload>.<mac>` (what the till's QR shows): the
payload is base64url (unpadded) JSON `{"app", "store", "nonce", "exp"}`, the mac
HMAC-SHA256 over `v1.<payload>` with a key derived from the server's secret (the one
that signs session tokens: `SessionTokens.derived_key`), so every process sharing the
secret makes and checks the same codes and nothing is stored for a code until it is
used. The nonce starts with its expiry in Unix seconds (`<exp>-<16 hex digits>`), so
the till's poll, which sends only the nonce it shows, says when its code runs out.

A scan is refused, before anything is stored, when the text is not a till code of this
app and one of its stores, or its mac does not check (400 `invalid_code`), or it expired
more than `GRACE` ago (410 `code_expired`; the grace covers a scan made in the code's
last second and sent a moment later). Then one transaction, under the customer's row
lock: the code is used once (membership_stamps is unique per (app, nonce): a replay,
a screenshot's scan, or the second of two scans at once gets 409 `code_used`; on
PostgreSQL the second INSERT waits for the first's commit), the customer's stamps today
(China) are counted against `stamp_card.per_day` (429 `daily_limit`, and the code stays
usable by someone else), the stamp is added and `points.per_stamp` credited (ledger
reason `stamp`, ref the nonce; announced as points_changed, ref `stamp:<nonce>`, for
the "points changed" message). The stamp that fills the card empties it and adds one to
`cardsFilled`; after the commit the reward coupon is claimed through the coupon
machinery (builder.serve.claims, Idempotency-Key `membership-stamp-<nonce>`), whose
answer is the reply's `reward`: the coupon's stock and per-user limit apply, and a
claim Alipay did not answer is settled later by the job queue. The stamp row says it
filled the card, so a reward its request never reserved (the process stopped right
after the commit) is reserved by the periodic task `membership.owed_stamp_rewards`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from anyio import to_thread
from pydantic import Field
from sqlalchemy import func, literal, select, update
from starlette.requests import Request
from starlette.responses import Response

from builder.serve import claims
from builder.serve.api_models import ClaimReply, Reply
from builder.serve.api_models import Request as RequestBody
from builder.serve.business_events import BusinessEvent
from builder.serve.content import china_today
from builder.serve.merchant import Merchant
from builder.serve.plugin_api import (
    CLIENT_ERRORS,
    ERROR,
    PREFIX,
    UNAVAILABLE,
    Api,
    ApiError,
    Endpoint,
    Operation,
    PeriodicTask,
    TaskContext,
    read_json,
    reply,
    validated,
)
from builder.serve.storage import CLAIMS, AlipayUser, NewClaim, Route, Storage
from plugins.coupon.models import Coupon, CouponSection

from .messages import POINTS_CHANGED
from .models import MembershipSection, StampCard
from .section import customer_request, section_of
from .tables import CUSTOMERS, LEDGER, STAMPS
from .writes import china_day_start, insert_ignoring_duplicates, locked_customer, of_user, write

LOG = logging.getLogger(__name__)
PREFIX_TEXT = "mpforge-stamp:"
REWARD_KEY = "membership-stamp-"  # + the nonce of the stamp that filled the card
OWED_AFTER = timedelta(minutes=2)
OWED_WITHIN = timedelta(days=7)
VERSION = "v1"
KEY_PURPOSE = "membership till code"
GRACE = timedelta(seconds=5)
MAX_CODE_CHARS = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TillCode:
    """One till code: whose app and store, its nonce (used once), when it expires, and
    its text (what the QR shows)."""

    appid: str
    store: str
    nonce: str
    expires: datetime
    text: str


def code_key(api: Api) -> bytes:
    """The key the server's till codes are signed with."""
    return api.tokens.derived_key(KEY_PURPOSE)


def new_nonce(expires: datetime) -> str:
    """A fresh nonce for a code expiring at `expires` (whole seconds)."""
    return f"{int(expires.timestamp())}-{secrets.token_hex(8)}"


def nonce_expiry(nonce: str) -> datetime | None:
    """When the code of `nonce` expires; None when it is not a nonce `new_nonce` makes."""
    seconds, _, rest = nonce.partition("-")
    if not (seconds.isdigit() and len(seconds) <= 11 and len(rest) == 16 and rest.isascii()
            and all(c in "0123456789abcdef" for c in rest)):
        return None
    return datetime.fromtimestamp(int(seconds), timezone.utc)


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, f"{VERSION}.{payload}".encode("ascii"), hashlib.sha256).digest())


def sign_code(key: bytes, appid: str, store: str, nonce: str) -> TillCode:
    """The code of `nonce` for `store`: the same text every time (the till shows it
    unchanged until it is used or expires)."""
    expires = nonce_expiry(nonce)
    if expires is None:
        raise ValueError(f"{nonce!r} is not a till code's nonce")
    body = json.dumps({"app": appid, "store": store, "nonce": nonce, "exp": int(expires.timestamp())},
                      separators=(",", ":"), sort_keys=True)
    payload = _b64(body.encode("utf-8"))
    return TillCode(appid, store, nonce, expires, f"{PREFIX_TEXT}{VERSION}.{payload}.{_mac(key, payload)}")


def read_code(key: bytes, text: str) -> TillCode | None:
    """The code `text` is, when its mac checks; None for anything else."""
    if not text.startswith(PREFIX_TEXT) or not text.isascii():
        return None
    version, _, rest = text[len(PREFIX_TEXT):].partition(".")
    payload, _, mac = rest.partition(".")
    if version != VERSION or not hmac.compare_digest(_mac(key, payload), mac):
        return None
    try:  # signed by us, so well formed; still read defensively
        fields = json.loads(_unb64(payload))
        appid, store, nonce, expires = fields["app"], fields["store"], fields["nonce"], fields["exp"]
    except (ValueError, binascii.Error, KeyError, TypeError):
        return None
    expires_at = nonce_expiry(nonce) if isinstance(nonce, str) else None
    if (expires_at is None or not isinstance(appid, str) or not isinstance(store, str)
            or expires != int(expires_at.timestamp())):
        return None
    return TillCode(appid, store, nonce, expires_at, text)


def code_used(storage: Storage, appid: str, nonce: str) -> bool:
    """Whether the code of `nonce` gave a stamp."""
    query = select(STAMPS.c.id).where(STAMPS.c.appid == appid, STAMPS.c.nonce == nonce)
    with storage.engine.connect() as conn:
        return conn.execute(query).first() is not None


def stamp_card_of(merchant: Merchant) -> tuple[MembershipSection, StampCard]:
    """The app's membership section and its stamp card; ApiError 404 when it has none."""
    section = section_of(merchant.sections)
    if section is None or section.stamp_card is None:
        raise ApiError(404, "no_stamp_card", "this mini-program has no stamp card (membership.stamp_card in its "
                                             "spec)")
    return section, section.stamp_card


# --- the stamp: one transaction --------------------------------------------------------------

class CodeUsed(Exception):
    """The code was used already (by anyone)."""


class DailyLimit(Exception):
    """The customer has had the day's stamps."""


@dataclass(frozen=True)
class Stamped:
    stamps: int
    cards_filled: int
    filled: bool
    points: int


def add_stamp(storage: Storage, code: TillCode, user: AlipayUser, card: StampCard, per_stamp: int,
              now: datetime) -> Stamped:
    """Use `code` for a stamp of `user`, in one transaction (the module docstring says
    what it checks and changes); CodeUsed or DailyLimit, nothing changed."""
    appid = code.appid
    with write(storage) as conn:
        customer = locked_customer(conn, storage, appid, user)
        inserted = conn.execute(insert_ignoring_duplicates(storage, STAMPS).values(
            appid=appid, user_kind=user.kind, alipay_user=user.id, nonce=code.nonce, store=code.store, filled=False,
            created_at=now).returning(STAMPS.c.id)).first()
        if inserted is None:  # the row is another scan's
            raise CodeUsed(code.nonce)
        today = conn.execute(select(func.count()).select_from(STAMPS).where(
            of_user(STAMPS, appid, user), STAMPS.c.created_at >= china_day_start(china_today(now)))).scalar_one()
        if today > card.per_day:  # today's count includes this stamp
            raise DailyLimit(user.id)
        stamps, cards_filled = customer.stamps + 1, customer.cards_filled
        filled = stamps >= card.stamps
        if filled:
            stamps, cards_filled = 0, cards_filled + 1
            conn.execute(update(STAMPS).where(STAMPS.c.id == inserted.id).values(filled=True))
        points = customer.points + per_stamp
        if per_stamp:
            conn.execute(LEDGER.insert().values(
                appid=appid, user_kind=user.kind, alipay_user=user.id, reason="stamp", ref=code.nonce,
                delta=per_stamp, balance=points, created_at=now))
        conn.execute(update(CUSTOMERS).where(CUSTOMERS.c.id == customer.id).values(
            stamps=stamps, cards_filled=cards_filled, points=points, earned=customer.earned + per_stamp,
            updated_at=now))
    return Stamped(stamps, cards_filled, filled, points)


# --- the route ------------------------------------------------------------------------------

class StampRequest(RequestBody):
    code: str = Field(min_length=1, max_length=MAX_CODE_CHARS, description="the text of the till's QR, as scanned "
                                                                           "(my.scan)")


class StampReply(Reply):
    stamps: int = Field(description="stamps on the current card (0 after the stamp that filled one)")
    stamps_per_card: int
    cards_filled: int
    filled: bool = Field(description="this stamp filled the card")
    reward: ClaimReply | None = Field(description="a filled card's reward coupon, as a claim of it answers "
                                                  "(CLAIMED, RESERVED, PENDING, or why not); null otherwise")
    points: int = Field(description="the customer's points now")


STAMP = Operation(
    "addStamp", "POST", f"{PREFIX}/membership/stamps", "A stamp of the stamp card, for a scan of the till's code",
    request=StampRequest, session="required",
    responses={200: ("stamped; a full card gave its reward coupon", (StampReply,)),
               **CLIENT_ERRORS,
               400: ("not JSON, or error.code invalid_code: the text is not a till code of this mini-program, or "
                     "it is forged", ERROR),
               401: ("no valid session token", ERROR),
               404: ("unknown app id, or error.code no_stamp_card: the app has no stamp card", ERROR),
               409: ("error.code code_used: the code was used already (one stamp per code)", ERROR),
               410: ("error.code code_expired: the code expired; scan the one the till shows now", ERROR),
               429: ("error.code daily_limit: the customer has had today's stamps (China time)", ERROR),
               **UNAVAILABLE})


async def stamp(request: Request) -> Response:
    api, merchant, (section, card), user = customer_request(request, stamp_card_of)
    body = validated(StampRequest, await read_json(request, api.limits.max_body_bytes))
    code = read_code(code_key(api), body.code.strip())
    if code is None or code.appid != merchant.appid or code.store not in merchant.stores:
        raise ApiError(400, "invalid_code", "this is not the stamp code of this shop's till; scan the QR the till "
                                            "shows")
    now = api.clock()
    if now > code.expires + GRACE:
        raise ApiError(410, "code_expired", "the code has expired; scan the new code the till shows now")
    try:
        stamped = await to_thread.run_sync(lambda: add_stamp(api.storage, code, user, card, section.points.per_stamp,
                                                             now))
    except CodeUsed:
        raise ApiError(409, "code_used", "this code was used already; each code gives one stamp. Ask for a new "
                                         "one at the till") from None
    except DailyLimit:
        raise ApiError(429, "daily_limit", f"the stamp card gives {card.per_day} stamp(s) a day; come again "
                                           "tomorrow") from None
    LOG.info("app %s: stamp %s at store %s%s", merchant.appid, code.nonce, code.store,
             " filled a card" if stamped.filled else "")
    if section.points.per_stamp:
        await to_thread.run_sync(api.announce, BusinessEvent(
            merchant.appid, user, POINTS_CHANGED, f"stamp:{code.nonce}", now,
            data=(("balance", str(stamped.points)), ("points", str(section.points.per_stamp)))))
    reward = await _reward(api, merchant, user, card, code) if stamped.filled else None
    return reply(200, StampReply(stamps=stamped.stamps, stamps_per_card=card.stamps,
                                 cards_filled=stamped.cards_filled, filled=stamped.filled, reward=reward,
                                 points=stamped.points))


async def _reward(api: Api, merchant: Merchant, user: AlipayUser, card: StampCard, code: TillCode) -> ClaimReply | None:
    """The claim of a full card's reward coupon, as the coupon plugin answers a claim."""
    coupon = merchant.coupon(card.reward)
    if coupon is None:  # the spec's check names the coupon; a spec served without it is a set-up mistake
        LOG.error("app %s: the stamp card's reward coupon %r is not in the coupon section; no reward given",
                  merchant.appid, card.reward)
        return None
    new = _reward_claim(merchant.appid, coupon, user, code.nonce)
    found = await claims.claim_new(api.storage, api.clients[merchant.appid], new, coupon, api.limits.retry)
    await api.jobs.settle_later(found)
    return claims.answer(found)[1]


def _reward_claim(appid: str, coupon: Coupon, user: AlipayUser, nonce: str) -> NewClaim:
    """The claim of a full card's reward: its Idempotency-Key names the stamp that
    filled the card, so the reward is claimed once whoever claims it."""
    return NewClaim(appid=appid, coupon_id=coupon.id, activity_id=coupon.activity_id, user=user,
                    idempotency_key=REWARD_KEY + nonce,
                    route=Route.PLUGIN if coupon.claim_route == "plugin" else Route.SEND, ch_info=None)


def claim_owed_rewards(context: TaskContext) -> None:
    """Every full card's reward its own request did not reserve (the process stopped
    between the stamp's commit and the claim, or the database failed then): reserved
    now, as that request would have; the claims' sweep (builder.serve.jobs) has Alipay
    issue it. A stamp gets OWED_AFTER to claim its own reward first; stamps older than
    OWED_WITHIN are left alone (a coupon since removed, a spec changed)."""
    storage = context.storage
    now = storage.clock()
    for appid, sections in context.sections.items():
        section, coupons = section_of(sections), sections.get("coupon")
        if section is None or section.stamp_card is None or not isinstance(coupons, CouponSection):
            continue
        coupon = next((c for c in coupons.coupons if c.id == section.stamp_card.reward), None)
        if coupon is None:
            continue
        claimed = select(CLAIMS.c.id).where(
            CLAIMS.c.appid == appid, CLAIMS.c.user_kind == STAMPS.c.user_kind,
            CLAIMS.c.alipay_user == STAMPS.c.alipay_user,
            CLAIMS.c.idempotency_key == literal(REWARD_KEY) + STAMPS.c.nonce)
        owed = select(STAMPS.c.user_kind, STAMPS.c.alipay_user, STAMPS.c.nonce).where(
            STAMPS.c.appid == appid, STAMPS.c.filled.is_(True), STAMPS.c.created_at < now - OWED_AFTER,
            STAMPS.c.created_at >= now - OWED_WITHIN, ~claimed.exists()).order_by(STAMPS.c.id)
        with storage.engine.connect() as conn:
            rows = list(conn.execute(owed))
        for row in rows:
            user = AlipayUser(row.user_kind, row.alipay_user)
            found = storage.reserve(_reward_claim(appid, coupon, user, row.nonce), out_biz_no=claims.new_out_biz_no(),
                                    stock=coupon.stock, per_user_limit=coupon.per_user_limit,
                                    new_customers_only=coupon.audience == "new_customers")
            LOG.warning("app %s: the reward of stamp %s was owed; claim %s reserved (%s)", appid, row.nonce, found.id,
                        found.status.value)


ENDPOINTS = (Endpoint(STAMP, stamp),)
TASKS = (PeriodicTask("membership.owed_stamp_rewards", claim_owed_rewards, cron="*/5 * * * *"),)
