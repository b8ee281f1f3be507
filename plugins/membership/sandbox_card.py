"""The sandbox gateway's member card (商家会员卡) methods, as Alipay answers them (fields:
the SDK's request and response classes; rules: docs/alipay-membership-facts.md 1), and
`POST /sandbox/card/apply`, which stands in for a user filling the claim form.

* alipay.offline.material.image.upload: a multipart request (the SDK's file
  image_content, which the gateway hands on base64-encoded); a png or jpg of at most
  2 MB (the background's limit, the larger of the two documented) -> image_id.
* alipay.marketing.card.template.create / .modify: request_id, card_type
  OUT_MEMBER_CARD, write_off_type, template_style_info{card_show_name, logo_id,
  background_id (both issued by this sandbox to this app), bg_color}, column_info_list
  with POINT and LEVEL (the card shows only declared columns), card_level_conf (at least
  one level, ids unique), field_rule_list -> template_id. A repeat of a request_id answers
  its template (the sandbox's choice: Alipay only says request_id must be unique).
* alipay.marketing.card.formtemplate.set: the claim form (OPEN_FORM_FIELD_*; required
  ones among mobile, name, gender, birthday, email).
* alipay.marketing.card.activateurl.apply -> apply_card_url carrying template_id.
  Both take a repeat, as Alipay does (which then shows holders the form, facts 1.2); the
  template counts them (form_sets, url_applies) for tests to check.
* alipay.marketing.card.activateform.query (auth_token): what the token's user filled in
  the form of request_id -> infos, a JSON array string.
* alipay.marketing.card.open (auth_token): the user of the token, a level of the
  template, one card per user and template -> card_info.biz_card_no. A repeat of the
  out_serial_no answers the same card; another open of a user who holds the card is
  refused (UNVERIFIED sub_code: Alipay's table for this API is not mirrored).
* alipay.marketing.card.update: target_card_no (BIZ_CARD) of this app, a level of the
  template -> result_code; the card's point and level are kept (`cards(state).card`).

`POST /sandbox/card/apply` with JSON `{"appId", "templateId", "login", "mobile"?}`
records that the user of auth code `sandbox-user-<login>` submitted the claim form and
answers what the claim page gives the mini-program: `{"authCode", "requestId",
"templateId"}` (404: no such template of the app; 409: its form or claim link is not
set up yet). Like /sandbox/follow it answers pages of any origin (the preview).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import cast
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from builder.serve.plugin_api import SandboxRefusal, SandboxState, biz_content, invalid_parameter, succeeded
from builder.serve.sandbox_state import AUTH_CODE_PREFIX, sandbox_user_id

PLUGIN = "membership.card"
IMAGE_MAX_BYTES = 2 * 1024 * 1024
IMAGE_MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff", "jpeg": b"\xff\xd8\xff"}
FORM_FIELDS = frozenset({"OPEN_FORM_FIELD_MOBILE", "OPEN_FORM_FIELD_GENDER", "OPEN_FORM_FIELD_NAME",
                         "OPEN_FORM_FIELD_BIRTHDAY", "OPEN_FORM_FIELD_IDCARD", "OPEN_FORM_FIELD_EMAIL",
                         "OPEN_FORM_FIELD_ADDRESS", "OPEN_FORM_FIELD_CITY", "OPEN_FORM_FIELD_IS_STUDENT",
                         "OPEN_FORM_FIELD_MEMBER_GRADE"})
# Required fields are limited to these (AD 小程序会员卡领卡表单信息自动回填和获取).
REQUIRABLE = frozenset({"OPEN_FORM_FIELD_MOBILE", "OPEN_FORM_FIELD_GENDER", "OPEN_FORM_FIELD_NAME",
                        "OPEN_FORM_FIELD_BIRTHDAY", "OPEN_FORM_FIELD_EMAIL"})
CORS = {"Access-Control-Allow-Origin": "*"}


def _auth_fail() -> SandboxRefusal:
    # isv.user-auth-fail: card.open's documented refusal of a user's token (facts 1.5, 1.7).
    return SandboxRefusal("40004", "isv.user-auth-fail", "用户授权失败")


@dataclass
class Template:
    app_id: str
    template_id: str
    levels: tuple[str, ...]
    design: str  # the request's JSON, for tests to read
    form: tuple[str, ...] | None = None  # required + optional OPEN_FORM_FIELD_*
    apply_card_url: str | None = None
    # How often formtemplate.set and activateurl.apply were called for it: Alipay takes a
    # repeat, and then shows the card's holders the claim form instead of their card
    # (facts 1.2), so tests check these stay at 1.
    form_sets: int = 0
    url_applies: int = 0


@dataclass(frozen=True)
class Card:
    """A member card opened in the sandbox: whose, of which template, and what it shows."""

    app_id: str
    template_id: str
    user_id: str
    biz_card_no: str
    out_serial_no: str
    point: str
    level: str
    updates: int = 0


@dataclass
class SandboxCards:
    """The sandbox's images, templates, claim forms and cards; thread-safe."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _images: dict[str, str] = field(default_factory=dict)  # image_id -> app_id
    _templates: dict[str, Template] = field(default_factory=dict)
    _requests: dict[tuple[str, str], str] = field(default_factory=dict)  # (app_id, request_id) -> template_id
    _forms: dict[tuple[str, str], tuple[str, str, dict[str, str]]] = field(default_factory=dict)
    _cards: dict[str, Card] = field(default_factory=dict)  # biz_card_no -> card

    def add_image(self, app_id: str, content: bytes) -> str:
        image_id = "sbximg" + hashlib.sha256(app_id.encode() + content).hexdigest()[:24]
        with self._lock:
            self._images[image_id] = app_id
        return image_id

    def image_of(self, app_id: str, image_id: str) -> bool:
        with self._lock:
            return self._images.get(image_id) == app_id

    def add_template(self, app_id: str, request_id: str, levels: tuple[str, ...], design: str) -> Template:
        with self._lock:
            earlier = self._requests.get((app_id, request_id))
            if earlier is not None:
                return self._templates[earlier]
            template_id = "2026" + hashlib.sha256(f"template:{app_id}:{request_id}".encode()).hexdigest()[:24]
            template = self._templates[template_id] = Template(app_id, template_id, levels, design)
            self._requests[(app_id, request_id)] = template_id
            return template

    def template(self, app_id: str, template_id: str) -> Template:
        """The app's template; Alipay's refusal for another's or none."""
        with self._lock:
            found = self._templates.get(template_id)
            if found is None or found.app_id != app_id:
                raise invalid_parameter("template_id 不存在")
            return replace(found)

    def change_template(self, template_id: str, **changes: object) -> None:
        with self._lock:
            template = self._templates[template_id]
            for name, value in changes.items():
                setattr(template, name, value)

    def count_call(self, template_id: str, counter: str) -> None:
        """One more call of the template's formtemplate.set or activateurl.apply."""
        with self._lock:
            template = self._templates[template_id]
            setattr(template, counter, getattr(template, counter) + 1)

    def templates(self, app_id: str) -> list[Template]:
        """Every template of the app, oldest first (for tests)."""
        with self._lock:
            return [replace(t) for t in self._templates.values() if t.app_id == app_id]

    def submit_form(self, app_id: str, template_id: str, user_id: str, values: dict[str, str]) -> str:
        """Record a submitted claim form; its request_id."""
        with self._lock:
            request_id = "sbxreq" + hashlib.sha256(
                f"form:{app_id}:{template_id}:{user_id}:{len(self._forms)}".encode()).hexdigest()[:24]
            self._forms[(app_id, request_id)] = (template_id, user_id, dict(values))
            return request_id

    def form(self, app_id: str, request_id: str) -> tuple[str, str, dict[str, str]] | None:
        with self._lock:
            return self._forms.get((app_id, request_id))

    def open_card(self, card: Card) -> Card:
        """The card opened, or the one this out_serial_no opened; refused for a user who
        holds a card of the template already."""
        with self._lock:
            for held in self._cards.values():
                if (held.app_id, held.template_id, held.user_id) == (card.app_id, card.template_id, card.user_id):
                    if held.out_serial_no == card.out_serial_no:
                        return held
                    # UNVERIFIED sub_code: the sandbox's name (facts 1.7: no table found);
                    # "one template makes one card per user" is Alipay's rule (facts 1.1).
                    raise SandboxRefusal("40004", "CARD_ALREADY_EXIST", "用户已领取该会员卡")
            self._cards[card.biz_card_no] = card
            return card

    def update_card(self, app_id: str, biz_card_no: str, point: str | None, level: str | None) -> Card:
        with self._lock:
            card = self._cards.get(biz_card_no)
            if card is None or card.app_id != app_id:
                raise invalid_parameter("target_card_no 不存在")
            changed = replace(card, point=card.point if point is None else point,
                              level=card.level if level is None else level, updates=card.updates + 1)
            self._cards[biz_card_no] = changed
            return changed

    def card(self, biz_card_no: str) -> Card | None:
        with self._lock:
            return self._cards.get(biz_card_no)


def cards(state: SandboxState) -> SandboxCards:
    return state.plugin_state(PLUGIN, SandboxCards)


def _token_user(state: SandboxState, app_id: str, params: Mapping[str, str]) -> str:
    user_id = state.user_for_token(app_id, params.get("auth_token", ""))
    if user_id is None:
        raise _auth_fail()
    return user_id


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise invalid_parameter(f"{name} 不能为空")
    return value


def _object(value: object, name: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise invalid_parameter(f"{name} 不能为空")
    return value


def _objects(value: object, name: str) -> list[dict[str, object]]:
    if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
        raise invalid_parameter(f"{name} 不能为空")
    return value


def image_upload(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.offline.material.image.upload: image_type, image_name, the file image_content."""
    image_type = params.get("image_type", "").lower()
    _text(params.get("image_name"), "image_name")
    try:
        content = base64.b64decode(params.get("image_content", ""), validate=True)
    except binascii.Error:
        content = b""
    if not content:
        raise invalid_parameter("image_content 不能为空")
    magic = IMAGE_MAGIC.get(image_type)
    if magic is None or not content.startswith(magic):
        raise invalid_parameter("图片格式错误：image_type 须为 png 或 jpg，且与图片内容一致")
    if len(content) > IMAGE_MAX_BYTES:
        raise invalid_parameter("图片大小超过限制")
    image_id = cards(state).add_image(app_id, content)
    return succeeded(image_id=image_id, image_url=f"https://sandbox.alipay.invalid/images/{image_id}")


def _levels(biz: Mapping[str, object], app_id: str, state: SandboxState) -> tuple[str, ...]:
    """The template's checks, shared by create and modify (which has no card_type: SDK
    AlipayMarketingCardTemplateModifyModel); its level ids."""
    _text(biz.get("write_off_type"), "write_off_type")
    style = _object(biz.get("template_style_info"), "template_style_info")
    if not 1 <= len(_text(style.get("card_show_name"), "card_show_name")) <= 20:
        raise invalid_parameter("card_show_name 长度超过限制")
    for name in ("logo_id", "background_id"):
        if not cards(state).image_of(app_id, _text(style.get(name), name)):
            raise invalid_parameter(f"{name} 无效：须为 alipay.offline.material.image.upload 返回的图片 id")
    _text(style.get("bg_color"), "bg_color")
    codes = [column.get("code") for column in _objects(biz.get("column_info_list"), "column_info_list")]
    for code in ("POINT", "LEVEL"):
        if code not in codes:
            raise invalid_parameter(f"column_info_list 缺少 {code}")
    levels = tuple(_text(conf.get("level"), "card_level_conf.level")
                   for conf in _objects(biz.get("card_level_conf"), "card_level_conf"))
    for conf in _objects(biz.get("card_level_conf"), "card_level_conf"):
        _text(conf.get("level_show_name"), "card_level_conf.level_show_name")
    if len(set(levels)) != len(levels):
        raise invalid_parameter("card_level_conf 等级重复")
    _objects(biz.get("field_rule_list"), "field_rule_list")
    return levels


def _design_text(biz: Mapping[str, object]) -> str:
    return json.dumps(biz, sort_keys=True, ensure_ascii=False)


def template_create(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    biz = biz_content(params)
    request_id = _text(biz.get("request_id"), "request_id")
    if biz.get("card_type") != "OUT_MEMBER_CARD":
        raise invalid_parameter("card_type 须为 OUT_MEMBER_CARD")
    levels = _levels(biz, app_id, state)
    template = cards(state).add_template(app_id, request_id, levels, _design_text(biz))
    return succeeded(template_id=template.template_id)


def template_modify(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    biz = biz_content(params)
    template = cards(state).template(app_id, _text(biz.get("template_id"), "template_id"))
    levels = _levels(biz, app_id, state)
    cards(state).change_template(template.template_id, levels=levels, design=_design_text(biz))
    return succeeded(template_id=template.template_id)


def _form_fields(fields: Mapping[str, object], part: str) -> list[str]:
    text = fields.get(part)
    if text is None and part == "optional":
        return []
    try:
        common = json.loads(text)["common_fields"] if isinstance(text, str) else None
    except (ValueError, KeyError, TypeError):
        common = None
    if not isinstance(common, list) or not all(isinstance(f, str) and f in FORM_FIELDS for f in common):
        raise invalid_parameter(f"fields.{part} 格式错误：{{\"common_fields\": [OPEN_FORM_FIELD_...]}}")
    return common


def formtemplate_set(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    biz = biz_content(params)
    template = cards(state).template(app_id, _text(biz.get("template_id"), "template_id"))
    fields = _object(biz.get("fields"), "fields")
    required, optional = _form_fields(fields, "required"), _form_fields(fields, "optional")
    if not set(required) <= REQUIRABLE:
        raise invalid_parameter("必填字段仅限生日、姓名、手机号、邮箱、性别")
    if set(required) & set(optional):
        raise invalid_parameter("可选字段不能与必填字段重复")
    cards(state).change_template(template.template_id, form=tuple(required + optional))
    cards(state).count_call(template.template_id, "form_sets")
    return succeeded()


def activateurl_apply(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    biz = biz_content(params)
    template = cards(state).template(app_id, _text(biz.get("template_id"), "template_id"))
    query = {"app_id": app_id, "template_id": template.template_id}
    if isinstance(biz.get("out_string"), str):
        query["out_string"] = str(biz["out_string"])
    url = "https://memberprod.alipay.com/account/openform/activecard.htm?" + urlencode(query)
    cards(state).change_template(template.template_id, apply_card_url=url)
    cards(state).count_call(template.template_id, "url_applies")
    return succeeded(apply_card_url=url)


def activateform_query(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    biz = biz_content(params)
    if biz.get("biz_type") != "MEMBER_CARD":
        raise invalid_parameter("biz_type 须为 MEMBER_CARD")
    template_id = _text(biz.get("template_id"), "template_id")
    request_id = _text(biz.get("request_id"), "request_id")
    user_id = _token_user(state, app_id, params)
    form = cards(state).form(app_id, request_id)
    if form is None or form[0] != template_id:
        raise invalid_parameter("request_id 无效")
    if form[1] != user_id:
        raise _auth_fail()
    return succeeded(infos=json.dumps([{k: v} for k, v in form[2].items()], ensure_ascii=False))


def card_open(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    biz = biz_content(params)
    out_serial_no = _text(biz.get("out_serial_no"), "out_serial_no")
    template = cards(state).template(app_id, _text(biz.get("card_template_id"), "card_template_id"))
    user = _object(biz.get("card_user_info"), "card_user_info")
    if user.get("user_uni_id_type") != "UID":
        raise invalid_parameter("user_uni_id_type 须为 UID")
    if _token_user(state, app_id, params) != _text(user.get("user_uni_id"), "user_uni_id"):
        raise _auth_fail()
    ext = _object(biz.get("card_ext_info"), "card_ext_info")
    _text(ext.get("external_card_no"), "external_card_no")
    for name in ("open_date", "valid_date"):
        _text(ext.get(name), name)
    level = ext.get("level")
    if level not in template.levels:
        raise invalid_parameter("参数有误。会员等级参数有误;必须和卡模板中的等级匹配")
    biz_card_no = "sbxcard" + hashlib.sha256(f"card:{app_id}:{template.template_id}:{out_serial_no}".encode()
                                             ).hexdigest()[:20]
    card = cards(state).open_card(Card(app_id, template.template_id, str(user["user_uni_id"]), biz_card_no,
                                       out_serial_no, str(ext.get("point", "0")), str(level)))
    # card_info is an object in Alipay's answer (SDK MerchantCard); the gateway writes it as given.
    answer: dict[str, object] = {**succeeded(), "card_info": {"biz_card_no": card.biz_card_no,
                                                              "external_card_no": ext["external_card_no"]}}
    return cast(dict[str, str], answer)


def card_update(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    biz = biz_content(params)
    if biz.get("target_card_no_type") != "BIZ_CARD":
        raise invalid_parameter("target_card_no_type 须为 BIZ_CARD")
    biz_card_no = _text(biz.get("target_card_no"), "target_card_no")
    _text(biz.get("occur_time"), "occur_time")
    info = _object(biz.get("card_info"), "card_info")
    card = cards(state).card(biz_card_no)
    if card is None or card.app_id != app_id:
        raise invalid_parameter("target_card_no 不存在")
    level = info.get("level")
    if level is not None and level not in cards(state).template(app_id, card.template_id).levels:
        raise invalid_parameter("参数有误。会员等级参数有误;必须和卡模板中的等级匹配")
    point = info.get("point")
    cards(state).update_card(app_id, biz_card_no, None if point is None else str(point),
                             None if level is None else str(level))
    return succeeded(result_code="SUCCESS")


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": {"message": message}}, status_code=status, headers=CORS)


async def apply(request: Request) -> Response:
    """The user of `sandbox-user-<login>` fills the template's claim form."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={**CORS, "Access-Control-Allow-Methods": "POST",
                                                  "Access-Control-Allow-Headers": "Content-Type"})
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) and body[k]
                                             for k in ("appId", "templateId", "login")):
        return _error(400, 'send {"appId": "<app id>", "templateId": "<template id>", "login": "<name of '
                           'sandbox-user-<name>>", "mobile": "<optional>"}')
    state: SandboxState = request.app.state.sandbox
    try:
        template = cards(state).template(body["appId"], body["templateId"])
    except SandboxRefusal:
        return _error(404, f"the sandbox has no card template {body['templateId']!r} of app {body['appId']!r}")
    if template.form is None or template.apply_card_url is None:
        return _error(409, "the template has no claim form or claim link yet (formtemplate.set, activateurl.apply)")
    values: dict[str, str] = {}
    if "OPEN_FORM_FIELD_MOBILE" in template.form:
        mobile = body.get("mobile", "13800000000")
        if not isinstance(mobile, str) or not mobile.isdigit():
            return _error(400, "mobile: digits only")
        values["OPEN_FORM_FIELD_MOBILE"] = mobile
    user_id = sandbox_user_id(body["login"])
    request_id = cards(state).submit_form(body["appId"], template.template_id, user_id, values)
    return JSONResponse({"authCode": f"{AUTH_CODE_PREFIX}{body['login']}", "requestId": request_id,
                         "templateId": template.template_id}, headers=CORS)


SANDBOX_METHODS = {
    "alipay.offline.material.image.upload": image_upload,
    "alipay.marketing.card.template.create": template_create,
    "alipay.marketing.card.template.modify": template_modify,
    "alipay.marketing.card.formtemplate.set": formtemplate_set,
    "alipay.marketing.card.activateurl.apply": activateurl_apply,
    "alipay.marketing.card.activateform.query": activateform_query,
    "alipay.marketing.card.open": card_open,
    "alipay.marketing.card.update": card_update,
}
SANDBOX_ROUTES = [Route("/sandbox/card/apply", apply, methods=["POST", "OPTIONS"])]
