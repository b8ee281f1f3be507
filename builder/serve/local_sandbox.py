"""A sandbox gateway standing in for Alipay for a set of merchants: `mpforge serve
--sandbox`, the tests and the load bench use it.

Fresh RSA2 key pairs (each app's, Alipay's), written to files in a private temporary
folder so that the clients read them through `KeySource(file=...)` as a deployment
would; a `SandboxState` with one voucher activity per coupon (the spec's stock and
per-user limit, as `ordervoucher.create` would have set them); and the gateway served
on 127.0.0.N:80 by `SandboxServer` (the SDK reaches no other port: see sandbox_server).
Login there with the auth code `sandbox-user-<anything>`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from builder.serve.keys import KeySource
from builder.serve.merchant import AlipayConfig, AppKeys, Merchant
from builder.serve.sandbox import create_sandbox_app
from builder.serve.sandbox_keys import generate_key_pair
from builder.serve.sandbox_server import SandboxServer
from builder.serve.sandbox_state import SandboxState


class LocalSandbox:
    """`with LocalSandbox(merchants) as sandbox:` a running gateway; `sandbox.alipay`
    points every merchant's client at it, `sandbox.state` is what it remembers (and the
    faults it shows). `timeout`: the clients' per-call timeout in seconds.

    Binding port 80 needs root or CAP_NET_BIND_SERVICE: PermissionError otherwise."""

    def __init__(self, merchants: Sequence[Merchant], *, state: SandboxState | None = None,
                 timeout: float = 10.0) -> None:
        self.state = state or SandboxState()
        for merchant in merchants:
            for coupon in merchant.coupons:
                self.state.add_activity(coupon.activity_id, stock=coupon.stock, per_user_limit=coupon.per_user_limit)
        self._folder = tempfile.TemporaryDirectory(prefix="mpforge-sandbox-keys-")
        alipay_pair = generate_key_pair()
        alipay_public = self._write("alipay-public.pem", alipay_pair.public_pem)
        app_public_pems, apps = {}, {}
        for merchant in merchants:
            pair = generate_key_pair()
            app_public_pems[merchant.appid] = pair.public_pem
            apps[merchant.appid] = AppKeys(app_private_key=self._write(f"{merchant.appid}-private.pem",
                                                                      pair.private_pem),
                                           alipay_public_key=alipay_public)
        try:
            self.server = SandboxServer(create_sandbox_app(app_public_pems, alipay_pair.private_pem, self.state))
        except BaseException:
            self._folder.cleanup()
            raise
        self.state.public_url = f"http://{self.server.host}"  # where the code images are served
        self.alipay = AlipayConfig(apps, gateway_url=self.server.gateway_url, timeout=timeout)

    def _write(self, name: str, pem: str) -> KeySource:
        path = Path(self._folder.name) / name
        # Created owner-only: a private key is never readable by others, even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(pem)
        return KeySource(file=path)

    def remove_key_files(self) -> None:
        """Delete the key files once every client has read its keys (AlipayClient reads
        them when made): a process ended by a signal then leaves no private key behind."""
        self._folder.cleanup()

    def __enter__(self) -> LocalSandbox:
        try:
            self.server.__enter__()
        except BaseException:
            self._folder.cleanup()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.server.close()
        finally:
            self._folder.cleanup()
