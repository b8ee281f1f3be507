"""RSA2 (SHA256withRSA, PKCS#1 v1.5) signatures and the strings Alipay signs.

Alipay's rules, in one place:

* a request is signed over its parameters sorted by name, as `k=v` joined by `&`, leaving
  out `sign` and parameters with an empty value (`sign_type` is signed). This is what the
  official SDK signs (`alipay.aop.api.util.SignatureUtils.get_sign_content`, which never
  sees empty values because the SDK leaves them out of the request).
* a response `{"<method>_response": {...}, "sign": "..."}` is signed over the exact JSON
  text of the `_response` object (the SDK cuts that text out of the body to verify it).
* an asynchronous notification is verified over its parameters sorted by name, leaving
  out `sign` and `sign_type` (AD:`mini/plugin/插件管理/插件授权.md`, sign_type row:
  "该参数不参与验签").

This module uses pycryptodome, which the SDK depends on; the client's requests and
responses go through the SDK's own code (the `rsa` package), so the sandbox and the SDK
check each other with two implementations.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from Crypto.Hash import SHA256
from Crypto.PublicKey.RSA import RsaKey
from Crypto.Signature import pkcs1_15

# Left out of the string a notification is verified over.
NOTIFICATION_UNSIGNED = frozenset({"sign", "sign_type"})


def request_sign_content(params: Mapping[str, str]) -> str:
    """The string a request's `sign` covers."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")


def notification_sign_content(params: Mapping[str, str]) -> str:
    """The string a notification's `sign` covers."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in NOTIFICATION_UNSIGNED)


def sign(private_key: RsaKey, content: str) -> str:
    """Base64 RSA2 signature of the UTF-8 bytes of `content`."""
    return base64.b64encode(pkcs1_15.new(private_key).sign(SHA256.new(content.encode("utf-8")))).decode("ascii")


def verify(public_key: RsaKey, content: str, signature: str) -> bool:
    """True when `signature` (base64) is an RSA2 signature of `content` by `public_key`.
    SHA-256 only: a SHA-1 ("RSA") signature does not pass for RSA2."""
    try:
        raw = base64.b64decode(signature, validate=True)
        pkcs1_15.new(public_key).verify(SHA256.new(content.encode("utf-8")), raw)
    except (ValueError, binascii.Error):
        return False
    return True
