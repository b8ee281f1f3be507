"""The sandbox gateway's 棋盘密云 crowds: alipay.merchant.qipan.crowd.create,
crowduser.add and crowduser.delete, checked as docs/alipay-membership-facts.md 3 says
Alipay takes them (request fields: the SDK's AlipayMerchantQipanCrowdCreateModel and
its QipanMerchantCrowdUser elements):

* crowd_name 1 to 15 characters; external_crowd_code required and unique per merchant
  (here: per app); user_list at most 1000 users a call;
* a user is {encrypt_identity_type, encrypt_identity_id, alipay_app_id}: OPEN_ID (with
  alipay_app_id, the app the open_id belongs to), SHA256_MOBILE, SHA256_IDFA or
  SHA256_OAID (64 hex digits); a 2088 user id is no listed type and is refused.

Alipay publishes no error codes for these methods (facts 3: not found), so every
refusal is the gateway's INVALID_PARAMETER shape, its wording the sandbox's own. The
crowds live in `SandboxCrowds`, the plugin's state in the gateway's SandboxState, where
the tests read what a push left in 棋盘.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from builder.serve.plugin_api import SandboxState, biz_content, invalid_parameter, succeeded

PLUGIN = "membership.qipan"
MAX_USERS = 1000
MAX_NAME = 15
HASHED_TYPES = ("SHA256_MOBILE", "SHA256_IDFA", "SHA256_OAID")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
USER_ID = re.compile(r"2088[0-9]{12}")

CrowdMember = tuple[str, str, str]  # (encrypt_identity_type, encrypt_identity_id, alipay_app_id or "")


@dataclass
class Crowd:
    app_id: str
    crowd_code: str
    external_crowd_code: str
    name: str
    description: str
    users: set[CrowdMember] = field(default_factory=set)


class SandboxCrowds:
    """The sandbox's crowds by crowd_code; thread-safe. `calls` counts each method's
    calls (what a push that sends only the difference saves)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._crowds: dict[str, Crowd] = {}
        self.calls: dict[str, int] = {}

    def create(self, app_id: str, external_code: str, name: str, description: str,
               users: set[CrowdMember]) -> Crowd:
        with self._lock:
            self._count("create")
            if any(c.app_id == app_id and c.external_crowd_code == external_code for c in self._crowds.values()):
                raise invalid_parameter(f"external_crowd_code {external_code} 已存在")
            code = "QP" + hashlib.sha256(f"crowd:{app_id}:{external_code}".encode()).hexdigest()[:20].upper()
            crowd = self._crowds[code] = Crowd(app_id, code, external_code, name, description, set(users))
            return crowd

    def change(self, app_id: str, crowd_code: str, users: set[CrowdMember], *, add: bool) -> None:
        with self._lock:
            self._count("add" if add else "delete")
            crowd = self._crowds.get(crowd_code)
            if crowd is None or crowd.app_id != app_id:
                raise invalid_parameter(f"crowd_code {crowd_code} 不存在")
            if add:
                crowd.users |= users
            else:
                crowd.users -= users

    def get(self, crowd_code: str) -> Crowd | None:
        """A copy of the crowd."""
        with self._lock:
            crowd = self._crowds.get(crowd_code)
            return None if crowd is None else Crowd(crowd.app_id, crowd.crowd_code, crowd.external_crowd_code,
                                                    crowd.name, crowd.description, set(crowd.users))

    def _count(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1


def crowds(state: SandboxState) -> SandboxCrowds:
    return state.plugin_state(PLUGIN, SandboxCrowds)


def _users(biz: Mapping[str, object], *, required: bool) -> set[CrowdMember]:
    listed = biz.get("user_list")
    if listed is None and not required:
        return set()
    if not isinstance(listed, list) or not listed:
        raise invalid_parameter("user_list 不能为空")
    if len(listed) > MAX_USERS:
        raise invalid_parameter(f"user_list 单次最多 {MAX_USERS} 个用户")
    found: set[CrowdMember] = set()
    for i, user in enumerate(listed):
        if not isinstance(user, dict):
            raise invalid_parameter(f"user_list[{i}] 格式错误")
        kind, value, app = (user.get("encrypt_identity_type"), user.get("encrypt_identity_id"),
                            user.get("alipay_app_id") or "")
        if not isinstance(value, str) or not value or not isinstance(app, str):
            raise invalid_parameter(f"user_list[{i}].encrypt_identity_id 不能为空")
        if kind == "OPEN_ID":
            if not app:
                raise invalid_parameter(f"user_list[{i}]: OPEN_ID 需要 alipay_app_id")
            if USER_ID.fullmatch(value):
                raise invalid_parameter(f"user_list[{i}]: {value} 是 2088 用户号，不是 OPEN_ID")
        elif kind in HASHED_TYPES:
            if not SHA256_HEX.fullmatch(value):
                raise invalid_parameter(f"user_list[{i}]: {kind} 需要 SHA256 值（64 位十六进制）")
        else:
            raise invalid_parameter(f"user_list[{i}].encrypt_identity_type {kind} 不支持")
        found.add((kind, value.lower() if kind in HASHED_TYPES else value, app))
    return found


def _crowd_code(biz: Mapping[str, object]) -> str:
    code = biz.get("crowd_code")
    if not isinstance(code, str) or not code:
        raise invalid_parameter("crowd_code 不能为空")
    return code


def crowd_create(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.merchant.qipan.crowd.create: answers crowd_code (SDK
    AlipayMerchantQipanCrowdCreateResponse)."""
    biz = biz_content(params)
    name, external, description = biz.get("crowd_name"), biz.get("external_crowd_code"), biz.get("crowd_desc", "")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise invalid_parameter(f"crowd_name 不能为空，且不超过 {MAX_NAME} 个字符")
    if not isinstance(external, str) or not external:
        raise invalid_parameter("external_crowd_code 不能为空")
    if not isinstance(description, str):
        raise invalid_parameter("crowd_desc 格式错误")
    crowd = crowds(state).create(app_id, external, name, description, _users(biz, required=False))
    return succeeded(crowd_code=crowd.crowd_code)


def crowd_user_add(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    biz = biz_content(params)
    crowds(state).change(app_id, _crowd_code(biz), _users(biz, required=True), add=True)
    return succeeded()


def crowd_user_delete(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    biz = biz_content(params)
    crowds(state).change(app_id, _crowd_code(biz), _users(biz, required=True), add=False)
    return succeeded()


SANDBOX_METHODS = {"alipay.merchant.qipan.crowd.create": crowd_create,
                   "alipay.merchant.qipan.crowduser.add": crowd_user_add,
                   "alipay.merchant.qipan.crowduser.delete": crowd_user_delete}
