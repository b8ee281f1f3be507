"""The Alipay member card (商家会员卡) of an app with a membership section: its template,
claiming it, and keeping Alipay's copy of each card's points and level current.
Alipay facts: docs/alipay-membership-facts.md 1.

* The template is made by the job queue's task membership.card_setup (every minute and
  at start-up; on PostgreSQL one process runs each tick), never by a customer's request:
  the spec's logo and background uploaded (alipay.offline.material.image.upload),
  alipay.marketing.card.template.create (POINT and LEVEL columns filled from card.open,
  the levels, an action opening the member page), alipay.marketing.card.formtemplate.set
  and alipay.marketing.card.activateurl.apply once each (Alipay: calling them again shows
  members the form instead of their card). Each step is recorded in membership_cards
  when Alipay answered it (template_id with the design's digest, form_set_at,
  apply_card_url), so a run resumes where a failed one stopped and never repeats a step
  it recorded. Runs are kept apart by a lease on the row (setup_by, setup_until): one
  UPDATE takes it, so of runs at once (a run outlasting its tick, several processes)
  one works and the others leave; a run that dies holds it until it expires
  (SETUP_LEASE). Only a run that died between Alipay's answer and the record repeats a
  step, and then before any claim link was handed out: no card exists yet to show the
  form instead. A failure is one log line; the next tick retries.
  A changed design (title, colour, images, levels) is applied with
  alipay.marketing.card.template.modify; a changed claim form is NOT set again (once per
  template, as above): it takes a new template, which mpforge does not make by itself (a
  warning is logged). The digest covers the design, the form and the images' bytes, which
  the task reads on each run (once a minute in one process); a request reads only the
  row.
* `GET membership/me` answers the claim link once the setup is done (applyCardUrl null
  before, and for a member).
* `POST membership/card` {authCode, requestId, templateId?}: what the claim page gave the
  mini-program (alipassToolKit's openCard callback). alipay.system.oauth.token (the
  token must be the session user's) -> alipay.marketing.card.activateform.query (the
  form; the mobile is kept only as its SHA-256, and only when the form asks it) ->
  alipay.marketing.card.open with the customer's points and level now, its
  out_serial_no fixed per customer (a retry after a lost answer opens nothing new) ->
  biz_card_no stored. A member asking again gets the same answer, Alipay not asked.
  card.open names the user by UID (user_id); an app on the OpenID scheme cannot open
  cards here (409 card_needs_user_id).
* `TASKS`: membership.card_setup (above), and membership.card_sync, every minute: alipay.marketing.card.update for every
  member whose points or level differ from what Alipay's card last showed
  (card_points, card_level), marked pushed only if unchanged meanwhile; running twice
  pushes the same values twice, which changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from anyio import to_thread
from sqlalchemy import or_, select, update
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
from .points import find_customer, me_answer
from .section import membership_of, section_of
from .tables import CARDS, CUSTOMERS
from .writes import insert_ignoring_duplicates, locked_customer, of_user, write

LOG = logging.getLogger(__name__)
FORM_FIELDS = {"mobile": "OPEN_FORM_FIELD_MOBILE", "name": "OPEN_FORM_FIELD_NAME",
               "gender": "OPEN_FORM_FIELD_GENDER", "birthday": "OPEN_FORM_FIELD_BIRTHDAY",
               "email": "OPEN_FORM_FIELD_EMAIL"}
IMAGE_TYPES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg"}
ALIPAY_TIME = "%Y-%m-%d %H:%M:%S"
MINI_PAGE_MAX = 20  # card_action_list[].mini_app_url.mini_page_param (facts 1.1)
# How long a run holds the card setup: far more than its few calls take, and the time
# after which a run that died mid-setup is taken over.
SETUP_LEASE = timedelta(minutes=10)


class CardSetupError(Exception):
    """The spec's card cannot be sent to Alipay (an image that is no local png or jpg)."""


@dataclass(frozen=True)
class CardTemplate:
    template_id: str
    apply_card_url: str
    design_digest: str


def _image(assets_dir: Path | None, asset: str) -> tuple[bytes, str]:
    """The asset's bytes and Alipay image_type."""
    kind = IMAGE_TYPES.get(Path(asset).suffix.lower())
    if asset.startswith("https://") or assets_dir is None or kind is None:
        raise CardSetupError(f"the member card's image {asset!r} must be a png or jpg file in the assets folder "
                             "(Alipay takes the image itself, uploaded)")
    try:
        return (assets_dir / asset).read_bytes(), kind
    except OSError as exc:
        raise CardSetupError(f"the member card's image {asset!r} cannot be read: {exc.strerror}") from None


def _rgb(color: str) -> str:
    """#rrggbb as Alipay's samples write colours: rgb(r,g,b)."""
    digits = color.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return "rgb({},{},{})".format(*(int(digits[i:i + 2], 16) for i in (0, 2, 4)))


def _design(appid: str, section: MembershipSection) -> dict[str, Any]:
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
                                       "mini_app_url": {"mini_app_id": appid, "mini_page_param": page}}]
    return design


def _digest(design: dict[str, Any], form: list[str], images: list[bytes]) -> str:
    text = json.dumps({"design": design, "form": form}, sort_keys=True, ensure_ascii=False)
    hashes = [hashlib.sha256(image).hexdigest() for image in images]
    return hashlib.sha256("\n".join([text, *hashes]).encode()).hexdigest()


@dataclass(frozen=True)
class CardSpec:
    """What the spec asks of the template: the design (but the image ids), the claim
    form, the images (bytes, Alipay image_type) and the digest of all of it."""

    design: dict[str, Any]
    form: list[str]
    logo: tuple[bytes, str]
    background: tuple[bytes, str]
    digest: str


def card_spec(appid: str, assets_dir: Path | None, section: MembershipSection) -> CardSpec:
    """The spec's card, its images read from the app's assets folder. CardSetupError for
    an image that is no local png or jpg."""
    logo, background = _image(assets_dir, section.card.logo), _image(assets_dir, section.card.background)
    design = _design(appid, section)
    form = [FORM_FIELDS[name] for name in section.card.form]
    return CardSpec(design, form, logo, background, _digest(design, form, [logo[0], background[0]]))


def find_card(storage: Storage, appid: str) -> CardTemplate | None:
    """The app's card once its setup is done (the claim link is there), else None."""
    with storage.engine.connect() as conn:
        row = conn.execute(select(CARDS).where(CARDS.c.appid == appid)).one_or_none()
    if row is None or row.template_id is None or row.form_set_at is None or row.apply_card_url is None:
        return None
    return CardTemplate(row.template_id, row.apply_card_url, row.design_digest)


class LeaseLost(Exception):
    """This run's lease on the app's card setup expired and another run took it."""


def _take_lease(storage: Storage, appid: str) -> str | None:
    """This run's token if it may set the app's card up now (the row made if missing);
    None while another run holds an unexpired lease. One UPDATE under the row's lock:
    of runs asking at once (threads, processes), one gets it."""
    now = storage.clock()
    token = secrets.token_hex(16)
    with write(storage) as conn:
        conn.execute(insert_ignoring_duplicates(storage, CARDS).values(appid=appid, created_at=now, updated_at=now))
        taken = conn.execute(update(CARDS).where(
            CARDS.c.appid == appid, or_(CARDS.c.setup_until.is_(None), CARDS.c.setup_until <= now)).values(
            setup_by=token, setup_until=now + SETUP_LEASE).returning(CARDS.c.appid)).first()
    return None if taken is None else token


def _record(storage: Storage, appid: str, token: str, **done: Any) -> None:
    """Record a step Alipay answered, while the lease is still this run's."""
    with write(storage) as conn:
        recorded = conn.execute(update(CARDS).where(CARDS.c.appid == appid, CARDS.c.setup_by == token).values(
            **done, updated_at=storage.clock()).returning(CARDS.c.appid)).first()
    if recorded is None:
        raise LeaseLost(appid)


def _release(storage: Storage, appid: str, token: str) -> None:
    with write(storage) as conn:
        conn.execute(update(CARDS).where(CARDS.c.appid == appid, CARDS.c.setup_by == token).values(
            setup_by=None, setup_until=None))


def _upload(client: AlipayClient, spec: CardSpec) -> dict[str, Any]:
    """The design with the images uploaded (their ids in template_style_info)."""
    style = {**spec.design["template_style_info"],
             "logo_id": client.upload_image(f"logo.{spec.logo[1]}", *spec.logo),
             "background_id": client.upload_image(f"background.{spec.background[1]}", *spec.background)}
    return {**spec.design, "template_style_info": style}


def set_up_card(storage: Storage, client: AlipayClient, appid: str, spec: CardSpec) -> bool:
    """Make the app's card template, or bring it up to `spec`, and record each step (see
    the module docstring); whether this run did the work (False: done already, or
    another run holds the lease). Blocking; AlipayError / AlipayUnavailable / LeaseLost
    propagate, the steps done so far recorded."""
    with storage.engine.connect() as conn:
        row = conn.execute(select(CARDS).where(CARDS.c.appid == appid)).one_or_none()
    if row is not None and row.design_digest == spec.digest and row.form_set_at is not None \
            and row.apply_card_url is not None:
        return False  # nothing to do: no lease taken, no write
    token = _take_lease(storage, appid)
    if token is None:
        LOG.info("app %s: the member card is being set up by another run", appid)
        return False
    try:
        with storage.engine.connect() as conn:  # as the lease found it (an earlier run may have ended meanwhile)
            row = conn.execute(select(CARDS).where(CARDS.c.appid == appid)).one()
        request_id = f"{appid}{spec.digest[:16]}"
        template_id = row.template_id
        if template_id is None:
            template_id = client.card_template_create({"request_id": request_id, **_upload(client, spec)})
            _record(storage, appid, token, template_id=template_id, design_digest=spec.digest)
            LOG.info("app %s: member card template %s made", appid, template_id)
        elif row.design_digest != spec.digest:
            client.card_template_modify(template_id, {"request_id": request_id, **_upload(client, spec)})
            _record(storage, appid, token, design_digest=spec.digest)
            LOG.warning("app %s: the member card's design changed: template %s modified (a changed claim form is "
                        "not set again: Alipay allows it once per template)", appid, template_id)
        if row.form_set_at is None:
            client.card_form_template_set(template_id, spec.form)
            _record(storage, appid, token, form_set_at=storage.clock())
        if row.apply_card_url is None:
            _record(storage, appid, token, apply_card_url=client.card_activate_url(template_id))
            LOG.info("app %s: member card template %s ready to claim", appid, template_id)
    finally:
        _release(storage, appid, token)
    return True


def card_setup_task(context: TaskContext) -> None:
    """The job queue's run of `set_up_card` for every app with a membership section.
    A failure is logged (one line per app and run) and left for the next tick."""
    for appid, sections in context.sections.items():
        section, client = section_of(sections), context.clients.get(appid)
        if section is None or client is None:
            continue
        try:
            set_up_card(context.storage, client, appid, card_spec(appid, context.assets_dirs.get(appid), section))
        except (AlipayError, AlipayUnavailable, CardSetupError, LeaseLost) as exc:
            LOG.warning("app %s: the member card cannot be set up now (the next run tries again): %s", appid, exc)


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
                     "until the back end has set the card up with Alipay)", (MeReply,)),
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


async def me(request: Request) -> Response:
    api = serve_api(request)
    merchant = api.merchant(request)
    section = membership_of(merchant)
    user = api.user(request, merchant.appid, required=True)
    assert user is not None  # required=True raises instead
    customer = await to_thread.run_sync(find_customer, api.storage, merchant.appid, user)
    card = None if customer.biz_card_no is not None else await to_thread.run_sync(find_card, api.storage,
                                                                                   merchant.appid)
    return reply(200, me_answer(merchant, section, customer, None if card is None else card.apply_card_url))


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
    card = await to_thread.run_sync(find_card, storage, merchant.appid)
    if card is None:
        raise ApiError(409, "card_not_ready", "the member card is not set up with Alipay yet (the back end's "
                                              "membership.card_setup task makes it); try again later")
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
TASKS = (PeriodicTask("membership.card_setup", card_setup_task, cron="* * * * *"),
         PeriodicTask("membership.card_sync", card_sync_task, cron="* * * * *"))
