"""AlipayClient (Alipay's official SDK underneath) against the sandbox gateway, end to end:
real RSA2 keys, real HTTP through uvicorn on 127.0.0.N:80 (the only port the SDK reaches).

- Login with an auth code names the same user every time; a bad code is Alipay's
  isv.code-invalid; a request signed with another key, an unknown app and a stale
  timestamp are refused as Alipay refuses them, and never crash the client.
- A response that is unsigned, tampered with or signed by another key is refused by the
  client; so is a notification that is not Alipay's, for this app, unchanged.
- Merchant vouchers: one voucher per out_biz_no however often it is sent, stock and the
  per-user limit hold, and a call that timed out is retried with the same out_biz_no into
  exactly one voucher. Timeouts, HTTP errors, a refused connection and Alipay's 20000 are
  AlipayUnavailable.
- Keys appear in no repr, exception message or log record.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.domain.AlipayOpenAppQrcodeCreateModel import AlipayOpenAppQrcodeCreateModel
from alipay.aop.api.request.AlipayOpenAppQrcodeCreateRequest import AlipayOpenAppQrcodeCreateRequest
from alipay.aop.api.request.AlipaySystemOauthTokenRequest import AlipaySystemOauthTokenRequest
from alipay.aop.api.request.AlipayTradeCancelRequest import AlipayTradeCancelRequest
from Crypto.PublicKey import RSA
from helpers import unavailable

from builder.serve.alipay_client import AlipayClient
from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.keys import KeyLoadError, KeySource, load_private_key, load_public_key
from builder.serve.sandbox import create_sandbox_app, signed_notification
from builder.serve.sandbox_keys import KeyPair, generate_key_pair
from builder.serve.sandbox_server import SandboxServer
from builder.serve.sandbox_state import Faults, SandboxState

APP_ID = "2021000000000001"
OTHER_APP_ID = "2021000000000002"
ACTIVITY = "2016042700826004508401111111"


@dataclass(frozen=True)
class Keys:
    app: KeyPair  # the app's pair: the client signs with its private key
    alipay: KeyPair  # Alipay's pair: the sandbox signs responses with its private key
    stranger: KeyPair  # a pair nobody registered


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(generate_key_pair(), generate_key_pair(), generate_key_pair())


@dataclass
class Sandbox:
    state: SandboxState
    server: SandboxServer
    keys: Keys
    key_dir: Path
    monkeypatch: pytest.MonkeyPatch

    def client(self, *, app_id: str = APP_ID, app_private_pem: str | None = None,
               alipay_public_pem: str | None = None, timeout: float = 5.0,
               server_url: str | None = None) -> AlipayClient:
        """A client reading its private key from a file and the Alipay key from the
        environment, as a deployment would."""
        key_file = self.key_dir / f"app-{app_id}.pem"
        key_file.write_text(app_private_pem or self.keys.app.private_pem)
        self.monkeypatch.setenv("MPFORGE_TEST_ALIPAY_PUBLIC_KEY", alipay_public_pem or self.keys.alipay.public_pem)
        return AlipayClient(app_id=app_id, app_private_key=KeySource(file=key_file),
                            alipay_public_key=KeySource(env="MPFORGE_TEST_ALIPAY_PUBLIC_KEY"),
                            server_url=server_url or self.server.gateway_url, timeout=timeout)

    def raw_sdk(self, *, skip_sign: bool = False) -> DefaultAlipayClient:
        """The SDK itself, for requests AlipayClient would never send."""
        config = AlipayClientConfig()
        config.app_id = APP_ID
        config.app_private_key = self.keys.app.private_pem
        config.alipay_public_key = self.keys.alipay.public_pem
        config.server_url = self.server.gateway_url
        config.skip_sign = skip_sign
        return DefaultAlipayClient(config)


def start(keys: Keys, state: SandboxState) -> SandboxServer:
    app = create_sandbox_app({APP_ID: keys.app.public_pem, OTHER_APP_ID: keys.app.public_pem},
                             keys.alipay.private_pem, state)
    try:
        return SandboxServer(app)
    except PermissionError:
        unavailable("the sandbox listens on port 80 (the only port Alipay's SDK reaches), which needs root")
        raise


@pytest.fixture
def sandbox(keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    state = SandboxState()
    state.add_activity(ACTIVITY, stock=2, per_user_limit=5)
    with start(keys, state) as server:
        yield Sandbox(state, server, keys, tmp_path, monkeypatch)


# --- login -------------------------------------------------------------------------------

def test_login_names_the_same_user_every_time(sandbox: Sandbox) -> None:
    client = sandbox.client()
    first, again = client.oauth_token("sandbox-user-42"), client.oauth_token("sandbox-user-42")
    assert re.fullmatch(r"2088\d{12}", first.user_id or "")
    assert (again.user_id, again.open_id) == (first.user_id, first.open_id)
    assert first.access_token and first.expires_in == 3600 and first.auth_start
    other = client.oauth_token("sandbox-user-43")
    assert other.user_id != first.user_id and other.open_id != first.open_id
    # An open_id belongs to one app, as Alipay's OpenIDs do; the user_id does not.
    elsewhere = sandbox.client(app_id=OTHER_APP_ID).oauth_token("sandbox-user-42")
    assert elsewhere.user_id == first.user_id and elsewhere.open_id != first.open_id
    assert first.access_token not in repr(first) and first.refresh_token not in repr(first)


@pytest.mark.parametrize("code", ["0b3d7e1c9a4f4e0e8c5d", "sandbox-user-", ""])
def test_a_bad_auth_code_is_isv_code_invalid(sandbox: Sandbox, code: str) -> None:
    with pytest.raises(AlipayError) as caught:
        sandbox.client().oauth_token(code)
    assert type(caught.value) is AlipayError  # a verified answer, not an unverified one
    assert (caught.value.code, caught.value.msg, caught.value.sub_code) == ("40002", "Invalid Arguments",
                                                                            "isv.code-invalid")


# --- what the gateway refuses ------------------------------------------------------------

def test_a_request_signed_with_another_key_is_refused_by_the_gateway(sandbox: Sandbox) -> None:
    client = sandbox.client(app_private_pem=sandbox.keys.stranger.private_pem)
    with pytest.raises(AlipayError) as caught:
        client.send_order_voucher(ACTIVITY, "order-1", user_id="2088000000000001")
    assert type(caught.value) is AlipayError
    assert (caught.value.code, caught.value.sub_code) == ("40002", "isv.invalid-signature")
    assert sandbox.state.issued(ACTIVITY) == []


def test_an_unknown_app_gets_an_unsigned_answer_which_the_client_does_not_trust(sandbox: Sandbox) -> None:
    with pytest.raises(UnverifiedResponse):
        sandbox.client(app_id="2021009999999999").oauth_token("sandbox-user-42")


def test_a_stale_timestamp_is_refused(sandbox: Sandbox) -> None:
    # The gateway's clock runs 20 minutes ahead of the SDK's, past the 15-minute tolerance.
    sandbox.state.clock = lambda: datetime.now() + timedelta(minutes=20)
    with pytest.raises(AlipayError) as caught:
        sandbox.client().oauth_token("sandbox-user-42")
    assert (caught.value.code, caught.value.sub_code) == ("40002", "isv.invalid-timestamp")
    sandbox.state.clock = lambda: datetime.now() + timedelta(minutes=10)
    assert sandbox.client().oauth_token("sandbox-user-42").user_id


def test_an_unsigned_request_is_refused(sandbox: Sandbox) -> None:
    request = AlipaySystemOauthTokenRequest()
    request.grant_type, request.code = "authorization_code", "sandbox-user-42"
    answer = json.loads(sandbox.raw_sdk(skip_sign=True).execute(request))
    assert (answer["code"], answer["msg"], answer["sub_code"]) == ("40001", "Missing Required Arguments",
                                                                   "isv.missing-signature")


def test_an_unknown_method_or_a_malformed_biz_content_is_refused(sandbox: Sandbox) -> None:
    sdk = sandbox.raw_sdk()
    cancel = AlipayTradeCancelRequest()  # a method the sandbox does not know
    cancel.add_other_text_param("biz_content", json.dumps({"out_trade_no": "20150320010101001"}))
    answer = json.loads(sdk.execute(cancel))
    assert (answer["code"], answer["sub_code"]) == ("40002", "isv.invalid-method")
    for biz_content in ["{", "[1]"]:
        request = AlipayOpenAppQrcodeCreateRequest()
        request.add_other_text_param("biz_content", biz_content)
        answer = json.loads(sdk.execute(request))
        assert (answer["code"], answer["sub_code"]) == ("40002", "isv.invalid-parameter")


# --- what the client refuses -------------------------------------------------------------

def test_a_tampered_response_is_refused_and_the_retry_finds_the_voucher(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.state.faults = Faults(tamper=True)
    with pytest.raises(UnverifiedResponse):
        client.oauth_token("sandbox-user-42")
    with pytest.raises(UnverifiedResponse):
        client.send_order_voucher(ACTIVITY, "order-1", user_id="2088000000000001")
    sandbox.state.faults = Faults()
    [issued] = sandbox.state.issued(ACTIVITY)  # the gateway did issue it
    assert client.send_order_voucher(ACTIVITY, "order-1", user_id="2088000000000001") == issued.voucher_code
    assert len(sandbox.state.issued(ACTIVITY)) == 1


def test_a_response_signed_with_another_alipay_key_is_refused(sandbox: Sandbox) -> None:
    client = sandbox.client(alipay_public_pem=sandbox.keys.stranger.public_pem)
    with pytest.raises(UnverifiedResponse):
        client.follow_query(user_id="2088000000000001")


# --- merchant vouchers --------------------------------------------------------------------

def test_a_voucher_per_out_biz_no_until_the_stock_runs_out(sandbox: Sandbox) -> None:
    client = sandbox.client()
    user = client.oauth_token("sandbox-user-42")
    first = client.send_order_voucher(ACTIVITY, "order-1", user_id=user.user_id)
    assert client.send_order_voucher(ACTIVITY, "order-1", user_id=user.user_id) == first
    second = client.send_order_voucher(ACTIVITY, "order-2", open_id=user.open_id)
    assert second != first
    with pytest.raises(AlipayError) as caught:
        client.send_order_voucher(ACTIVITY, "order-3", user_id=user.user_id)
    assert (caught.value.code, caught.value.sub_code) == ("40004", "VOUCHER_STOCK_NOT_ENOUGH")
    # A repeat still answers after the stock is gone; a reused out_biz_no for someone else does not.
    assert client.send_order_voucher(ACTIVITY, "order-1", user_id=user.user_id) == first
    with pytest.raises(AlipayError) as caught:
        client.send_order_voucher(ACTIVITY, "order-1", user_id="2088000000000009")
    assert caught.value.sub_code == "OUT_BIZ_NO_REPEATED"
    assert sorted(v.voucher_code for v in sandbox.state.issued(ACTIVITY)) == sorted([first, second])


def test_the_per_user_limit_counts_a_user_by_user_id_and_open_id_alike(sandbox: Sandbox) -> None:
    sandbox.state.add_activity("limited", stock=10, per_user_limit=1)
    client = sandbox.client()
    user = client.oauth_token("sandbox-user-7")
    client.send_order_voucher("limited", "a", user_id=user.user_id)
    with pytest.raises(AlipayError) as caught:
        client.send_order_voucher("limited", "b", open_id=user.open_id)
    assert (caught.value.code, caught.value.sub_code) == ("40004", "USER_VOUCHER_LIMIT_EXCEEDED")
    other = client.oauth_token("sandbox-user-8")
    client.send_order_voucher("limited", "c", user_id=other.user_id)
    with pytest.raises(AlipayError) as caught:
        client.send_order_voucher("no-such-activity", "d", user_id=user.user_id)
    assert caught.value.sub_code == "ACTIVITY_NOT_EXIST"
    with pytest.raises(ValueError, match="exactly one"):
        client.send_order_voucher("limited", "e", user_id=user.user_id, open_id=user.open_id)
    assert sorted(v.user_id for v in sandbox.state.issued("limited")) == sorted([user.user_id, other.user_id])


def test_a_timeout_is_unavailable_and_the_retry_issues_exactly_one_voucher(sandbox: Sandbox) -> None:
    client = sandbox.client(timeout=0.3)
    sandbox.state.faults = Faults(delay_seconds=1.0)  # the voucher is issued, the answer comes late
    started = time.monotonic()
    with pytest.raises(AlipayUnavailable) as caught:
        client.send_order_voucher(ACTIVITY, "order-1", user_id="2088000000000001")
    assert time.monotonic() - started < 0.9
    assert "timed out" in str(caught.value)
    sandbox.state.faults = Faults()
    code = client.send_order_voucher(ACTIVITY, "order-1", user_id="2088000000000001")
    assert [v.voucher_code for v in sandbox.state.issued(ACTIVITY)] == [code]


@pytest.mark.parametrize("faults, reason", [(Faults(http_status=502), "HTTP error status"),
                                            (Faults(busy=True), "20000 isp.unknow-error")])
def test_no_usable_answer_is_unavailable(sandbox: Sandbox, faults: Faults, reason: str) -> None:
    sandbox.state.faults = faults
    with pytest.raises(AlipayUnavailable, match=reason):
        sandbox.client().send_order_voucher(ACTIVITY, "order-1", user_id="2088000000000001")
    assert sandbox.state.issued(ACTIVITY) == []


def test_a_refused_connection_is_unavailable(sandbox: Sandbox, keys: Keys) -> None:
    with start(keys, SandboxState()) as stopped:
        url = stopped.gateway_url
    with pytest.raises(AlipayUnavailable, match="refused"):
        sandbox.client(server_url=url).oauth_token("sandbox-user-42")


def test_a_server_url_with_a_port_is_refused_up_front(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="port"):
        sandbox.client(server_url="http://127.0.0.1:8080/gateway.do")


# --- life account follows, QR codes -----------------------------------------------------------

def test_follow_query_reads_who_follows_the_life_account(sandbox: Sandbox) -> None:
    client = sandbox.client()
    user = client.oauth_token("sandbox-user-42")
    assert client.follow_query(user_id=user.user_id) is False
    sandbox.state.set_following(APP_ID, user.user_id or "")
    assert client.follow_query(user_id=user.user_id) is True
    assert client.follow_query(open_id=user.open_id) is True
    assert sandbox.client(app_id=OTHER_APP_ID).follow_query(user_id=user.user_id) is False  # another account
    sandbox.state.set_following(APP_ID, user.user_id or "", following=False)
    assert client.follow_query(open_id=user.open_id) is False


def test_qrcode_urls_are_stable_and_describe_is_limited(sandbox: Sandbox) -> None:
    client = sandbox.client()
    code = client.create_qrcode("pages/menu/menu", "store=xintiandi&table=12", "新天地店 12 号桌", size="m")
    assert code == client.create_qrcode("pages/menu/menu", "store=xintiandi&table=12", "新天地店 12 号桌", size="m")
    assert code.url.startswith("https://qr.alipay-sandbox.invalid/") and code.url_circle_blue and code.url_circle_white
    assert client.create_qrcode("pages/menu/menu", "store=xintiandi&table=13", "新天地店 13 号桌").url != code.url
    with pytest.raises(ValueError, match="32"):
        client.create_qrcode("pages/menu/menu", "", "x" * 33)
    with pytest.raises(ValueError, match="256"):
        client.create_qrcode("pages/menu/menu", "q" * 257, "x")
    with pytest.raises(ValueError, match="size"):
        client.create_qrcode("pages/menu/menu", "", "x", size="xl")
    # The gateway enforces the limit too, for a caller that does not check.
    model = AlipayOpenAppQrcodeCreateModel()
    model.url_param, model.query_param, model.describe = "pages/menu/menu", "a=1", "x" * 33
    answer = json.loads(sandbox.raw_sdk().execute(AlipayOpenAppQrcodeCreateRequest(biz_model=model)))
    assert (answer["code"], answer["sub_code"]) == ("40004", "INVALID_PARAMETER")


# --- notifications -----------------------------------------------------------------------

def test_notification_verification(sandbox: Sandbox, keys: Keys) -> None:
    client = sandbox.client()
    fields = {"notify_id": "2020042300222004232009800000000007", "notify_type": "open_app_auth_notify",
              "notify_time": "2020-04-23 00:42:32", "app_id": APP_ID, "charset": "UTF-8", "version": "1.0",
              "biz_content": json.dumps({"detail": {"user_id": "2088000000000001", "说明": "关注"}},
                                        ensure_ascii=False)}
    notification = signed_notification(keys.alipay.private_pem, fields)
    assert client.verify_notification(notification)
    assert not client.verify_notification({**notification, "notify_time": "2020-04-23 00:42:33"})
    assert not client.verify_notification({**notification, "extra": "x"})
    assert not client.verify_notification({k: v for k, v in notification.items() if k != "sign"})
    assert not client.verify_notification({**notification, "sign_type": "RSA"})
    assert not client.verify_notification(signed_notification(keys.stranger.private_pem, fields))
    assert not client.verify_notification(signed_notification(keys.alipay.private_pem,
                                                              {**fields, "app_id": OTHER_APP_ID}))


# --- keys ---------------------------------------------------------------------------------

def _key_lines(pair: KeyPair) -> list[str]:
    """The base64 lines of both keys of a pair: none may show up anywhere."""
    return [line for pem in (pair.private_pem, pair.public_pem) for line in pem.splitlines()
            if line and not line.startswith("-----")]


def test_keys_appear_in_no_repr_message_or_log_record(sandbox: Sandbox, keys: Keys, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    client = sandbox.client()
    texts = [repr(client), repr(keys.app), repr(KeySource(env="MPFORGE_TEST_ALIPAY_PUBLIC_KEY"))]
    failures: list[Exception] = []
    client.oauth_token("sandbox-user-42")
    calls = [lambda: client.oauth_token("nonsense"),
             lambda: sandbox.client(app_private_pem=keys.stranger.private_pem).oauth_token("sandbox-user-42"),
             lambda: sandbox.client(alipay_public_pem=keys.stranger.public_pem).oauth_token("sandbox-user-42")]
    for call in calls:
        with pytest.raises(AlipayError) as caught:
            call()
        failures.append(caught.value)
    sandbox.state.faults = Faults(http_status=500)
    with pytest.raises(AlipayUnavailable) as unavailable_error:
        client.oauth_token("sandbox-user-42")
    failures.append(unavailable_error.value)
    # Keys that cannot be used: in the wrong place, garbled, missing.
    garbled = tmp_path / "garbled.pem"
    garbled.write_text(keys.app.private_pem.replace("A", "*"))
    monkeypatch.setenv("MPFORGE_TEST_PRIVATE_AS_PUBLIC", keys.app.private_pem)
    monkeypatch.setenv("MPFORGE_TEST_PUBLIC_AS_PRIVATE", keys.alipay.public_pem)
    monkeypatch.delenv("MPFORGE_TEST_UNSET", raising=False)
    for load, source in [(load_public_key, KeySource(env="MPFORGE_TEST_PRIVATE_AS_PUBLIC")),
                         (load_private_key, KeySource(env="MPFORGE_TEST_PUBLIC_AS_PRIVATE")),
                         (load_private_key, KeySource(file=garbled)),
                         (load_private_key, KeySource(env="MPFORGE_TEST_UNSET")),
                         (load_private_key, KeySource(file=tmp_path / "absent.pem"))]:
        with pytest.raises(KeyLoadError) as bad_key:
            load(source)
        assert source.describe() in str(bad_key.value)
        # Raised afresh, not chained to the parser's error (whose text could quote the key).
        assert bad_key.value.__cause__ is None
        assert bad_key.value.__context__ is None or bad_key.value.__suppress_context__
        failures.append(bad_key.value)
    texts += [text for exc in failures for text in traceback.format_exception(exc)]
    records = [r for r in caplog.records if r.name.startswith("builder.serve")]
    assert len(records) >= 5  # the client does log what happens
    texts += [r.getMessage() for r in caplog.records]
    leaks = [line for pair in (keys.app, keys.alipay, keys.stranger) for line in _key_lines(pair)
             if any(line in text for text in texts)]
    assert leaks == []


def test_a_key_may_be_the_bare_base64_alipay_hands_out(tmp_path: Path, keys: Keys) -> None:
    """Alipay's key tool gives one line of base64 (a PKCS#8 private key for Java users)."""
    key = RSA.import_key(keys.app.private_pem)
    bare = tmp_path / "app_private_key.txt"
    bare.write_text(base64.b64encode(key.export_key(format="DER", pkcs=8)).decode() + "\n")
    assert load_private_key(KeySource(file=bare)) == key
    with pytest.raises(ValueError, match="exactly one"):
        KeySource()
    with pytest.raises(ValueError, match="exactly one"):
        KeySource(file=bare, env="X")
