"""What the sandbox gateway's methods are made of: the core's (alipay.system.oauth.token,
in `sandbox`) and the ones plugins add through the `mpforge_sandbox_methods` hook.

A method is `handler(state, app_id, params) -> dict`: the gateway (`sandbox`) has
checked the app, the signature and the timestamp, and signs what the handler answers
(the fields of Alipay's response, `succeeded(...)` for a success) or the
`SandboxRefusal` it raises, as Alipay would. The helpers read `biz_content` as Alipay
does and refuse what it refuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from builder.serve.alipay_errors import SERVICE_UNAVAILABLE, SUCCESS
from builder.serve.sandbox_state import SandboxState

# Gateway code -> msg, as Alipay words them (AD:`mini/api/开放能力API/运动数据/my.getRunData.md`
# error table; 40004 from AD:`support/支付宝小程序/常见问题/BIZ_ERROR（没有操作权限）.md`).
MESSAGES = {
    SUCCESS: "Success",
    SERVICE_UNAVAILABLE: "Service Currently Unavailable",
    "40001": "Missing Required Arguments",
    "40002": "Invalid Arguments",
    "40004": "Business Failed",
    "40006": "Insufficient Permissions",
}
SandboxMethod = Callable[[SandboxState, str, Mapping[str, str]], dict[str, str]]


class SandboxRefusal(Exception):
    """The gateway's refusal: code (one of MESSAGES), sub_code, sub_msg; `signed` False
    only when no app key pair is known to sign with."""

    def __init__(self, code: str, sub_code: str, sub_msg: str, *, signed: bool = True) -> None:
        super().__init__(sub_code)
        self.code, self.sub_code, self.sub_msg, self.signed = code, sub_code, sub_msg, signed


def succeeded(**fields: str) -> dict[str, str]:
    """A successful answer: code 10000, msg Success, then the method's fields."""
    return {"code": SUCCESS, "msg": MESSAGES[SUCCESS], **fields}


def invalid_parameter(what: str) -> SandboxRefusal:
    # A business parameter missing or out of range. Per-API names are unverified; this is
    # the shape of AD:`support/支付宝小程序/常见问题/INVALID_PARAMETER（订单数据同步报错）.md`.
    return SandboxRefusal("40004", "INVALID_PARAMETER", what)


def biz_content(params: Mapping[str, str]) -> dict[str, object]:
    """The request's biz_content, a JSON object."""
    try:
        biz = json.loads(params.get("biz_content", ""))
    except json.JSONDecodeError:
        raise SandboxRefusal("40002", "isv.invalid-parameter", "biz_content is not JSON") from None
    if not isinstance(biz, dict):
        raise SandboxRefusal("40002", "isv.invalid-parameter", "biz_content is not a JSON object")
    return biz


def text_field(biz: Mapping[str, object], name: str, *, required: bool = True) -> str:
    """A text field of biz_content ("" when it is optional and absent)."""
    value = biz.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise invalid_parameter(f"{name} 不能为空")
    return value


def user_id_of(state: SandboxState, app_id: str, biz: Mapping[str, object]) -> str:
    """The user_id a call names, by user_id or by this app's open_id."""
    if biz.get("user_id"):
        return text_field(biz, "user_id")
    if biz.get("open_id"):
        user_id = state.user_for_open_id(app_id, text_field(biz, "open_id"))
        if user_id is None:
            raise invalid_parameter("open_id 无效")
        return user_id
    raise invalid_parameter("user_id 和 open_id 不能同时为空")
