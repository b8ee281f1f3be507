"""The life_account plugin's part of the back end: the sandbox gateway's
alipay.open.public.user.follow.query (through `mpforge_sandbox_methods`), which a
followers' coupon claim asks (the coupon plugin's route, through the app's AlipayClient).
"""

from __future__ import annotations

from collections.abc import Mapping

from builder.serve.plugin_api import SandboxState, biz_content, succeeded, user_id_of

FOLLOW_QUERY = "alipay.open.public.user.follow.query"


def follow_query(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.open.public.user.follow.query, asked by the life account's app: is_follow
    "T" or "F" (SDK AlipayOpenPublicUserFollowQueryResponse; T/F per the Java SDK's
    AlipayOpenPublicUserFollowQueryResponse docstring). Who follows is
    `SandboxState.set_following`'s (the sandbox's POST /sandbox/follow)."""
    following = state.is_following(app_id, user_id_of(state, app_id, biz_content(params)))
    return succeeded(is_follow="T" if following else "F")


SANDBOX_METHODS = {FOLLOW_QUERY: follow_query}
