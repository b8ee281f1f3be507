"""The Alipay member card (商家会员卡) of an app with a membership section: its template,
claiming it, and keeping Alipay's copy of each card's points and level current.
Alipay facts: docs/alipay-membership-facts.md 1.

* The template is made on first need (GET membership/me of a customer without the card,
  or POST membership/card): the spec's logo and background uploaded
  (alipay.offline.material.image.upload), alipay.marketing.card.template.create (POINT
  and LEVEL columns filled from card.open, the levels, an action opening the member
  page), alipay.marketing.card.formtemplate.set and alipay.marketing.card.activateurl.apply
  once each (Alipay: calling them again shows members the form instead of their card);
  stored in membership_cards with a digest of the design. A changed design (title,
  colour, images, levels) is applied with alipay.marketing.card.template.modify; a
  changed claim form is NOT set again (once per template, as above): it takes a new
  template, which mpforge does not make by itself (a warning is logged).
  Two processes making the first template at once send the same request_id, and the
  first row stored wins.
* `POST membership/card` {authCode, requestId, templateId?}: what the claim page gave the
  mini-program (alipassToolKit's openCard callback). alipay.system.oauth.token (the
  token must be the session user's) -> alipay.marketing.card.activateform.query (the
  form; the mobile is kept only as its SHA-256, and only when the form asks it) ->
  alipay.marketing.card.open with the customer's points and level now, its
  out_serial_no fixed per customer (a retry after a lost answer opens nothing new) ->
  biz_card_no stored. A member asking again gets the same answer, Alipay not asked.
  card.open names the user by UID (user_id); an app on the OpenID scheme cannot open
  cards here (409 card_needs_user_id).
* `TASKS`: membership.card_sync, every minute: alipay.marketing.card.update for every
  member whose points or level differ from what Alipay's card last showed
  (card_points, card_level), marked pushed only if unchanged meanwhile; running twice
  pushes the same values twice, which changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from anyio import to_thread
from sqlalchemy import select, update
from starlette.requests import Request
from starlette.responses import Response

from builder.serve.alipay_client import AlipayClient
from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.content import CHINA
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
    reply,
    serve_api,
    validated,
)
from builder.serve.storage import AlipayUser, Storage

from .member_replies import CardRequest, MeReply
from .models import MembershipSection
from .points import (
    apply_card_url,
    find_customer,
    insert_ignoring_duplicates,
    locked_customer,
    me_answer,
    membership_of,
    of_user,
    section_of,
    write,
)
from .tables import CARDS, CUSTOMERS

LOG = logging.getLogger(__name__)
FORM_FIELDS = {"mobile": "OPEN_FORM_FIELD_MOBILE", "name": "OPEN_FORM_FIELD_NAME",
               "gender": "OPEN_FORM_FIELD_GENDER", "birthday": "OPEN_FORM_FIELD_BIRTHDAY",
               "email": "OPEN_FORM_FIELD_EMAIL"}
IMAGE_TYPES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg"}
ALIPAY_TIME = "%Y-%m-%d %H:%M:%S"
MINI_PAGE_MAX = 20  # card_action_list[].mini_app_url.mini_page_param (facts 1.1)


class CardSetupError(Exception):
    """The spec's card cannot be sent to Alipay (an image that is no local png or jpg)."""


@dataclass(frozen=True)
class CardTemplate:
    template_id: str
    apply_card_url: str
    design_digest: str


def _image(merchant: Merchant, asset: str) -> tuple[bytes, str]:
    """The asset's bytes and Alipay image_type."""
    kind = IMAGE_TYPES.get(Path(asset).suffix.lower())
    if asset.startswith("https://") or merchant.assets_dir is None or kind is None:
        raise CardSetupError(f"the member card's image {asset!r} must be a png or jpg file in the assets folder "
                             "(Alipay takes the image itself, uploaded)")
    try:
        return (merchant.assets_dir / asset).read_bytes(), kind
    except OSError as exc:
        raise CardSetupError(f"the member card's image {asset!r} cannot be read: {exc.strerror}") from None


def _rgb(color: str) -> str:
    """#rrggbb as Alipay's samples write colours: rgb(r,g,b)."""
    digits = color.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return "rgb({},{},{})".format(*(int(digits[i:i + 2], 16) for i in (0, 2, 4)))


def _design(merchant: Merchant, section: MembershipSection) -> dict[str, Any]:
    """The template's fields but the image ids (TemplateStyleInfoDTO and the rest)."""
    card = section.card
    page = f"pages/{section.pages.member.id}/{section.pages.member.id}"
    design: dict[str, Any] = {
        "card_type": "OUT_MEMBER_CARD",
        "write_off_type": "none",  # no code to show at a till (facts 1.1: none hides it)
        "template_style_info": {"card_show_name": card.title, "bg_color": _rgb(card.text_color)},
        "column_info_list": [{"code": "POINT", "title": "积分"}, {"code": "LEVEL", "title": "等级"}],
        "field_rule_list": [{"field_name": name, "rule_name": "ASSIGN_FROM_REQUEST", "rule_value": name}
                            for name in ("Point", "Level", "OpenDate", "ValidDate")],
        "card_level_conf": [{"level": level.id, "level_show_name": level.name,
                             **({"level_desc": "；".join(level.benefits)} if level.benefits else {})}
                            for level in section.levels],
    }
    if len(page) <= MINI_PAGE_MAX:
        design["card_action_list"] = [{"code": "member", "text": "会员中心", "url_type": "miniAppUrl",
                                       "mini_app_url": {"mini_app_id": merchant.appid, "mini_page_param": page}}]
    return design


def _digest(design: dict[str, Any], form: list[str], images: list[bytes]) -> str:
    text = json.dumps({"design": design, "form": form}, sort_keys=True, ensure_ascii=False)
    hashes = [hashlib.sha256(image).hexdigest() for image in images]
    return hashlib.sha256("\n".join([text, *hashes]).encode()).hexdigest()


def find_card(storage: Storage, appid: str) -> CardTemplate | None:
    with storage.engine.connect() as conn:
        row = conn.execute(select(CARDS).where(CARDS.c.appid == appid)).one_or_none()
    return None if row is None else CardTemplate(row.template_id, row.apply_card_url, row.design_digest)


def ensure_card(storage: Storage, client: AlipayClient, merchant: Merchant, section: MembershipSection) -> CardTemplate:
    """The app's card template, made or brought up to date with the spec (see the module
    docstring). Blocking; AlipayError / AlipayUnavailable / CardSetupError propagate."""
    logo, background = _image(merchant, section.card.logo), _image(merchant, section.card.background)
    design = _design(merchant, section)
    form = [FORM_FIELDS[name] for name in section.card.form]
    digest = _digest(design, form, [logo[0], background[0]])
    stored = find_card(storage, merchant.appid)
    if stored is not None and stored.design_digest == digest:
        return stored
    style = design["template_style_info"]
    style["logo_id"] = client.upload_image(f"logo.{logo[1]}", logo[0], logo[1])
    style["background_id"] = client.upload_image(f"background.{background[1]}", background[0], background[1])
    now = storage.clock()
    if stored is not None:
        client.card_template_modify(stored.template_id, {"request_id": f"{merchant.appid}{digest[:16]}", **design})
        LOG.warning("app %s: the member card's design changed: template %s modified (a changed claim form is not "
                    "set again: Alipay allows it once per template)", merchant.appid, stored.template_id)
        with write(storage) as conn:
            conn.execute(update(CARDS).where(CARDS.c.appid == merchant.appid).values(design_digest=digest,
                                                                                     updated_at=now))
        return CardTemplate(stored.template_id, stored.apply_card_url, digest)
    template_id = client.card_template_create({"request_id": f"{merchant.appid}{digest[:16]}", **design})
    client.card_form_template_set(template_id, form)
    url = client.card_activate_url(template_id)
    LOG.info("app %s: member card template %s made", merchant.appid, template_id)
    with write(storage) as conn:
        conn.execute(insert_ignoring_duplicates(storage, CARDS).values(
            appid=merchant.appid, template_id=template_id, apply_card_url=url, design_digest=digest, created_at=now,
            updated_at=now))
    made = find_card(storage, merchant.appid)
    assert made is not None  # stored just now, or by another process first
    return made


def card_dates(opened: datetime, section: MembershipSection) -> dict[str, str]:
    """open_date and valid_date as card.open sent them (update must send the same)."""
    start = opened.astimezone(CHINA)
    try:
        end = start.replace(year=start.year + section.card.valid_years)
    except ValueError:  # 29 February
        end = start.replace(year=start.year + section.card.valid_years, day=28)
    return {"open_date": start.strftime(ALIPAY_TIME), "valid_date": end.strftime(ALIPAY_TIME)}


def card_serial(appid: str, user: AlipayUser) -> str:
    """The customer's out_serial_no and external_card_no: one per customer, so a retried
    open names the same card."""
    return "mp" + hashlib.sha256(f"{appid}:{user.kind}:{user.id}".encode()).hexdigest()[:30]


# --- routes ----------------------------------------------------------------------------

ME = Operation(
    "getMembership", "GET", f"{PREFIX}/membership/me", "The session user's membership: card, level, points, stamps",
    session="required",
    responses={200: ("the customer's membership; applyCardUrl is the claim link when the user has no card (null "
                     "while the card cannot be made)", (MeReply,)),
               401: ("no valid session token", ERROR), 404: ("unknown app id, or no membership section", ERROR),
               **UNAVAILABLE})
OPEN_CARD = Operation(
    "openMemberCard", "POST", f"{PREFIX}/membership/card", "Open the member card the user claimed",
    request=CardRequest, session="required",
    responses={200: ("the customer is a member (asking again answers the same)", (MeReply,)), **CLIENT_ERRORS,
               401: ("no valid session token", ERROR),
               403: ("wrong_user: the claim was made by another Alipay user than the session's", ERROR),
               404: ("unknown app id, or no membership section", ERROR),
               409: ("card_not_ready: the card template is not made (Alipay did not take it yet; the log says "
                     "why); card_needs_user_id: the app is on the OpenID scheme", ERROR),
               502: ("alipay_refused: Alipay refused a step (alipaySubCode), or its answer did not verify", ERROR),
               503: ("Alipay or the database did not answer; retry", ERROR)},
    response_headers={503: {"Retry-After": "seconds"}})


async def _claim_link(storage: Storage, client: AlipayClient, merchant: Merchant,
                      section: MembershipSection) -> str | None:
    """The claim link, the card made first if it is not; None (logged) while it cannot be."""
    try:
        return (await to_thread.run_sync(ensure_card, storage, client, merchant, section)).apply_card_url
    except (AlipayError, AlipayUnavailable, CardSetupError) as exc:
        LOG.warning("app %s: the member card cannot be made now: %s", merchant.appid, exc)
        return await to_thread.run_sync(apply_card_url, storage, merchant.appid)


async def me(request: Request) -> Response:
    api = serve_api(request)
    merchant = api.merchant(request)
    section = membership_of(merchant)
    user = api.user(request, merchant.appid, required=True)
    assert user is not None  # required=True raises instead
    customer = await to_thread.run_sync(find_customer, api.storage, merchant.appid, user)
    link = None
    if customer.biz_card_no is None:
        link = await _claim_link(api.storage, api.clients[merchant.appid], merchant, section)
    return reply(200, me_answer(merchant, section, customer, link))


def _alipay_failed(exc: Exception) -> ApiError:
    if isinstance(exc, UnverifiedResponse):
        return ApiError(502, "alipay_unverified", "Alipay's answer did not verify; check the server's Alipay "
                                                  "public key")
    if isinstance(exc, AlipayError):
        return ApiError(502, "alipay_refused", "Alipay refused to open the card; the user may claim it again",
                        alipay_sub_code=exc.sub_code or exc.code)
    return ApiError(503, "alipay_unavailable", "Alipay did not answer; retry", headers={"Retry-After": "1"})


async def open_card(request: Request) -> Response:
    api = serve_api(request)
    merchant = api.merchant(request)
    section = membership_of(merchant)
    user = api.user(request, merchant.appid, required=True)
    assert user is not None  # required=True raises instead
    data = await read_json(request, api.limits.max_body_bytes)
    body = validated(CardRequest, {} if data is None else data)
    customer = await to_thread.run_sync(find_customer, api.storage, merchant.appid, user)
    if customer.biz_card_no is None:
        await _open(api.storage, api.clients[merchant.appid], merchant, section, user, body)
        customer = await to_thread.run_sync(find_customer, api.storage, merchant.appid, user)
    return reply(200, me_answer(merchant, section, customer, None))


async def _open(storage: Storage, client: AlipayClient, merchant: Merchant, section: MembershipSection,
                user: AlipayUser, body: CardRequest) -> None:
    try:
        card = await to_thread.run_sync(ensure_card, storage, client, merchant, section)
    except (AlipayError, AlipayUnavailable, CardSetupError) as exc:
        LOG.warning("app %s: the member card cannot be made now: %s", merchant.appid, exc)
        raise ApiError(409, "card_not_ready", "the member card is not set up with Alipay yet; try again "
                                              "later") from None
    if body.template_id is not None and body.template_id != card.template_id:
        raise ApiError(422, "unknown_template", f"templateId {body.template_id!r} is not this app's member card")
    if user.kind != "user_id":
        raise ApiError(409, "card_needs_user_id", "Alipay opens member cards by user_id, which an app on the "
                                                  "OpenID scheme does not get")
    try:
        token = await to_thread.run_sync(client.oauth_token, body.auth_code)
        if token.user_id != user.id:
            raise ApiError(403, "wrong_user", "the card was claimed by another Alipay user than this session's")
        form = await to_thread.run_sync(client.card_form_query, card.template_id, body.request_id,
                                        token.access_token)
        customer = await to_thread.run_sync(find_customer, storage, merchant.appid, user)
        level = section.level_for(customer.earned).id
        opened = storage.clock()
        serial = card_serial(merchant.appid, user)
        biz_card_no = await to_thread.run_sync(lambda: client.card_open(
            auth_token=token.access_token, out_serial_no=serial, template_id=card.template_id, user_id=user.id,
            card={"external_card_no": serial, **card_dates(opened, section), "level": level,
                  "point": str(max(customer.points, 0))}))
    except (AlipayError, AlipayUnavailable) as exc:
        raise _alipay_failed(exc) from None
    mobile = form.get(FORM_FIELDS["mobile"]) if "mobile" in section.card.form else None
    await to_thread.run_sync(_store_card, storage, merchant.appid, user, biz_card_no, opened, mobile,
                             customer.points, level)
    LOG.info("app %s: member card opened", merchant.appid)


def _store_card(storage: Storage, appid: str, user: AlipayUser, biz_card_no: str, opened: datetime,
                mobile: str | None, points: int, level: str) -> None:
    with write(storage) as conn:
        customer = locked_customer(conn, storage, appid, user)
        if customer.biz_card_no is not None:
            return  # another request stored it first
        conn.execute(update(CUSTOMERS).where(of_user(CUSTOMERS, appid, user)).values(
            biz_card_no=biz_card_no, card_opened_at=opened, card_points=points, card_level=level,
            mobile_sha256=hashlib.sha256(mobile.encode()).hexdigest() if mobile else None,
            updated_at=storage.clock()))


# --- the card's points and level on Alipay ------------------------------------------------

def push_cards(storage: Storage, client: AlipayClient, appid: str, section: MembershipSection) -> int:
    """card.update for every member of `appid` whose card shows other points or level
    than now; how many were pushed. A member Alipay refuses or does not answer for is
    left for the next run."""
    with storage.engine.connect() as conn:
        rows = conn.execute(select(CUSTOMERS).where(CUSTOMERS.c.appid == appid,
                                                    CUSTOMERS.c.biz_card_no.is_not(None))).all()
    pushed = 0
    for row in rows:
        level = section.level_for(row.earned).id
        if (row.card_points, row.card_level) == (row.points, level):
            continue
        try:
            client.card_update(row.biz_card_no, storage.clock().astimezone(CHINA).strftime(ALIPAY_TIME),
                               {"point": str(max(row.points, 0)), "level": level,  # owed points show as 0
                                **card_dates(row.card_opened_at, section)})
        except (AlipayError, AlipayUnavailable) as exc:
            LOG.warning("app %s: card %s not updated (%s)", appid, row.biz_card_no, exc)
            continue
        with write(storage) as conn:
            # Marked pushed only if nothing changed since it was read.
            conn.execute(update(CUSTOMERS).where(CUSTOMERS.c.id == row.id, CUSTOMERS.c.points == row.points,
                                                 CUSTOMERS.c.earned == row.earned).values(
                card_points=row.points, card_level=level))
        pushed += 1
    return pushed


def card_sync_task(context: TaskContext) -> None:
    """The job queue's run of `push_cards` for every app with a membership section."""
    for appid, sections in context.sections.items():
        section, client = section_of(sections), context.clients.get(appid)
        if section is not None and client is not None:
            pushed = push_cards(context.storage, client, appid, section)
            if pushed:
                LOG.info("app %s: %d member cards updated on Alipay", appid, pushed)


ENDPOINTS = (Endpoint(ME, me), Endpoint(OPEN_CARD, open_card))
TASKS = (PeriodicTask("membership.card_sync", card_sync_task, cron="* * * * *"),)
