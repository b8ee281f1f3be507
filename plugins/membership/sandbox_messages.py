"""The sandbox gateway's alipay.open.app.mini.templatemessage.send (subscription messages).

The gateway has checked the app and the signature. Like Alipay, the sandbox keeps the
subscriptions itself: on Alipay a customer's acceptance in my.requestSubscribeMessage
is recorded by Alipay, not told by the merchant's server. So a test does what the
customer's tap would: `message_centre(state).add_template(app_id, template_id,
keywords)` (the template the merchant added in 商家平台, with its keyword count) and
`.subscribe(app_id, user_id, template_id)` (one acceptance: one send of a one-time
template; acceptances add up). The back end is told separately (POST
membership/subscriptions), as the mini-program tells it.

A send is refused (code 40004, as Alipay's business failures) with:

* USER_TEMPLATE_ILLEGAL: the template is not one of the app's;
* USER_TEMPLATE_LACK_KEYWORD: `data` is not JSON `{"keyword1": {"value": ...}, ...}` with
  exactly the template's keywords;
* USER_KEYWORD_LENGTH_ERROR: a value is longer than 50 characters;
* USER_NOT_SUBSCRIBED: the user has no acceptance left for the template. UNVERIFIED NAME:
  Alipay's sub_code for this was not found (docs/alipay-membership-facts.md 2.2); the
  back end must not branch on it.

Each message sent is kept (`message_centre(state).sent`) for tests to read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from builder.serve.plugin_api import SandboxRefusal, SandboxState, biz_content, succeeded, text_field

TEMPLATE_MESSAGE_SEND = "alipay.open.app.mini.templatemessage.send"
MAX_VALUE_CHARS = 50


@dataclass(frozen=True)
class SentMessage:
    app_id: str
    user_id: str
    template_id: str
    page: str
    values: tuple[str, ...]  # keyword1, keyword2, ... in order


class MessageCentre:
    """The sandbox's templates, subscriptions and sent messages; guards itself for threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._templates: dict[tuple[str, str], int] = {}  # (app_id, template_id) -> keywords
        self._allowed: dict[tuple[str, str, str], int] = {}  # (app_id, user_id, template_id) -> sends left
        self._sent: list[SentMessage] = []

    def add_template(self, app_id: str, template_id: str, keywords: int) -> None:
        with self._lock:
            self._templates[(app_id, template_id)] = keywords

    def subscribe(self, app_id: str, user_id: str, template_id: str) -> None:
        """One acceptance of the template by the user (my.requestSubscribeMessage)."""
        with self._lock:
            key = (app_id, user_id, template_id)
            self._allowed[key] = self._allowed.get(key, 0) + 1

    def send(self, message: SentMessage) -> None:
        """Deliver `message`, or the SandboxRefusal Alipay would answer."""
        with self._lock:
            keywords = self._templates.get((message.app_id, message.template_id))
            if keywords is None:
                raise SandboxRefusal("40004", "USER_TEMPLATE_ILLEGAL", "模板不存在或已删除")
            if len(message.values) != keywords:
                raise SandboxRefusal("40004", "USER_TEMPLATE_LACK_KEYWORD", "模板关键词数量不匹配")
            if any(len(value) > MAX_VALUE_CHARS for value in message.values):
                raise SandboxRefusal("40004", "USER_KEYWORD_LENGTH_ERROR", "关键词内容超过50个字符")
            key = (message.app_id, message.user_id, message.template_id)
            if self._allowed.get(key, 0) <= 0:
                raise SandboxRefusal("40004", "USER_NOT_SUBSCRIBED", "用户未订阅该模板")
            self._allowed[key] -= 1
            self._sent.append(message)

    @property
    def sent(self) -> list[SentMessage]:
        with self._lock:
            return list(self._sent)


def message_centre(state: SandboxState) -> MessageCentre:
    return state.plugin_state("membership.messages", MessageCentre)


def _values(data: str) -> tuple[str, ...]:
    """keyword1..N's values of `data`; a refusal when it is not that shape."""
    lack = SandboxRefusal("40004", "USER_TEMPLATE_LACK_KEYWORD", "data 须为 {\"keyword1\":{\"value\":...}} 形式")
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError:
        raise lack from None
    if not isinstance(parsed, dict) or sorted(parsed) != sorted(f"keyword{i}" for i in range(1, len(parsed) + 1)):
        raise lack
    values = [parsed[f"keyword{i}"] for i in range(1, len(parsed) + 1)]
    if not all(isinstance(v, dict) and isinstance(v.get("value"), str) for v in values):
        raise lack
    return tuple(v["value"] for v in values)


def send_template_message(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """The sandbox's alipay.open.app.mini.templatemessage.send: no business fields on
    success (SDK AlipayOpenAppMiniTemplatemessageSendResponse)."""
    biz = biz_content(params)
    template_id = text_field(biz, "user_template_id")
    if biz.get("to_user_id"):
        user_id = text_field(biz, "to_user_id")
    else:
        found = state.user_for_open_id(app_id, text_field(biz, "to_open_id"))
        if found is None:
            raise SandboxRefusal("40004", "INVALID_PARAMETER", "to_open_id 无效")
        user_id = found
    message = SentMessage(app_id, user_id, template_id, text_field(biz, "page", required=False),
                          _values(text_field(biz, "data")))
    message_centre(state).send(message)
    return succeeded()


SANDBOX_METHODS = {TEMPLATE_MESSAGE_SEND: send_template_message}
