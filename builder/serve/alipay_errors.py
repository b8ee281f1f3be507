"""What a call to Alipay can end in besides a result, and the codes that decide which.

Gateway codes (Alipay's 公共错误码, opendocs.alipay.com/common/02km9f; the msg texts as
AD:`mini/api/开放能力API/运动数据/my.getRunData.md` and the AD BIZ_ERROR pages quote them):
10000 success; 20000 Service Currently Unavailable (isp./aop.unknow-error: retry later);
20001 Insufficient Token Permissions; 40001 Missing Required Arguments; 40002 Invalid
Arguments (isv.invalid-signature, isv.invalid-app-id, isv.invalid-timestamp,
isv.code-invalid, ...); 40004 Business Failed (the API's own sub_code); 40006
Insufficient Permissions.
"""

from __future__ import annotations

SUCCESS = "10000"
SERVICE_UNAVAILABLE = "20000"


class AlipayError(Exception):
    """Alipay answered and refused: a gateway or business error (`code` is not 10000).
    Not worth retrying as is; `sub_code` says why (e.g. isv.code-invalid)."""

    def __init__(self, method: str, code: str, sub_code: str, msg: str, sub_msg: str) -> None:
        detail = f" ({sub_code}: {sub_msg})" if sub_code else ""
        super().__init__(f"{method}: {code} {msg}{detail}")
        self.method = method
        self.code = code
        self.sub_code = sub_code
        self.msg = msg
        self.sub_msg = sub_msg


class UnverifiedResponse(AlipayError):
    """A response that is unsigned or whose signature does not verify with the Alipay public
    key. Nothing in it is trusted, so what it claims is not reported: the call's outcome is
    unknown (a voucher may have been issued), and a retry with the same out_biz_no is safe."""

    CODE = "unverified-response"

    def __init__(self, method: str) -> None:
        super().__init__(method, self.CODE, self.CODE, "response signature missing or invalid",
                         "check the Alipay public key and app_id configured for this app")


class AlipayUnavailable(Exception):
    """No answer from Alipay: connection refused or reset, timeout, an HTTP error from a
    proxy, or Alipay's own 20000 (service unavailable). The call may or may not have taken
    effect; retry it with the same idempotency key (out_biz_no)."""

    def __init__(self, method: str, reason: str) -> None:
        super().__init__(f"{method}: Alipay unavailable ({reason})")
        self.method = method
        self.reason = reason
