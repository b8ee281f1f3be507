"""The stamp card (plugins/membership/stamps_api.py, till.py): the till's rotating signed
code, a scan of it becoming one stamp (replayed, expired, forged, over the day's limit:
refused), a full card's reward coupon issued through the sandbox, one code scanned twice
at once, and the till page behind the staff login, on SQLite and PostgreSQL; then the
till page in Chromium, with screenshots in /tmp/till-screenshots."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import write_project
from serve_support import APPID, NOON, OTHER_APPID, SECRET, Database, coupon
from test_ordering import Shop, open_shop, shop_spec

from builder.serve.merchant import load_merchant
from builder.serve.sandbox_state import sandbox_user_id
from builder.serve.session_tokens import SessionTokens
from builder.serve.storage import CLAIMS, AlipayUser
from plugins.membership.stamps_api import (
    GRACE,
    KEY_PURPOSE,
    add_stamp,
    claim_owed_rewards,
    new_nonce,
    read_code,
    sign_code,
)
from plugins.membership.tables import CUSTOMERS, LEDGER, STAMPS
from plugins.membership.till import qr_data_uri

pytest_plugins = ["serve_fixtures"]  # database, postgres

STAFF_TOKEN = "staff-token-for-the-tests-0123456789abc"  # at least 32 characters
ORIGIN = "http://serve.test"  # ApiClient's base URL: the Host the app sees
TILL = f"/merchant/{APPID}/till"
STAMPS_URL = f"/api/v1/{APPID}/membership/stamps"
SCREENSHOTS = Path("/tmp/till-screenshots")
KEY = SessionTokens(SECRET, timedelta(hours=2), lambda: NOON).derived_key(KEY_PURPOSE)
CODE_SECONDS = 30


def membership_spec(**stamp_card: Any) -> dict[str, Any]:
    """test_ordering's shop (two stores), with a reward coupon and a membership section
    whose stamp card takes 3 stamps, one a day, 2 points each."""
    spec = copy.deepcopy(shop_spec())
    spec["coupon"] = {"coupons": [coupon("welcome"), coupon("reward", title="集满赠饮", per_user_limit=5)]}
    spec["membership"] = {
        "card": {"title": "测试会员卡", "logo": "banner.png", "background": "banner.png",
                 "plugin_provider": "2021000000000099"},
        "levels": [{"id": "regular", "name": "普通会员", "min_points": 0}],
        "points": {"per_stamp": 2},
        "stamp_card": {"stamps": 3, "reward": "reward", "per_day": 1, "code_seconds": CODE_SECONDS, **stamp_card},
        "messages": {"templates": [
            {"id": "ready", "template_id": "TPL_READY", "event": "order_ready", "ask_after": "order_paid",
             "fields": ["order_no", "store", "status"], "page": "home"},
            {"id": "expiring", "template_id": "TPL_EXPIRING", "event": "coupon_expiring",
             "ask_after": "coupon_claimed", "fields": ["coupon", "expires"]},
            {"id": "points", "template_id": "TPL_POINTS", "event": "points_changed", "ask_after": "card_opened",
             "fields": ["points", "balance", "status"]}],
            "per_user_per_day": 2},
    }
    return spec


@pytest.fixture
def shop(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    monkeypatch.setenv(f"MPFORGE_STAFF_TOKEN_{APPID}", STAFF_TOKEN)
    merchant = load_merchant(write_project(tmp_path / "shop", membership_spec()))
    with open_shop(database, merchant, monkeypatch) as opened:
        yield opened


@dataclass
class Till:
    shop: Shop

    def cookie(self) -> dict[str, str]:
        answer = self.shop.api.post(f"/merchant/{APPID}/login", json={"token": STAFF_TOKEN},
                                    headers={"Origin": ORIGIN})
        self.shop.api.client.cookies.clear()  # each request sends the cookie it means to
        assert answer.status_code == 204, answer.text
        value = re.match(r"mpforge_staff=([^;]+);", answer.headers["set-cookie"])
        assert value is not None
        return {"Cookie": f"mpforge_staff={value.group(1)}"}

    def code(self, cookie: dict[str, str], **params: str) -> dict[str, Any]:
        answer = self.shop.api.get(f"{TILL}/code", params=params, headers=cookie)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def stamp(self, token: str, code: str) -> httpx.Response:
        return self.shop.api.post(STAMPS_URL, json={"code": code}, headers={"Authorization": f"Bearer {token}"})

    def rows(self, table: Any) -> list[dict[str, Any]]:
        return self.shop.served.rows(table)


@pytest.fixture
def till(shop: Shop) -> Till:
    return Till(shop)


def fresh_code(store: str = "main", appid: str = APPID, key: bytes = KEY, seconds: int = CODE_SECONDS) -> str:
    return sign_code(key, appid, store, new_nonce(NOON + timedelta(seconds=seconds))).text


# --- the code and the stamp ----------------------------------------------------------------

def test_a_till_code_gives_one_stamp_and_its_replay_is_409(till: Till) -> None:
    cookie = till.cookie()
    shown = till.code(cookie)
    assert (shown["store"], shown["stores"], shown["codeSeconds"], shown["used"]) == ("main", ["main", "east"],
                                                                                      CODE_SECONDS, False)
    code = read_code(KEY, shown["code"])
    assert code is not None and (code.appid, code.store, code.nonce) == (APPID, "main", shown["nonce"])
    assert shown["code"].startswith("mpforge-stamp:v1.") and shown["secondsLeft"] == CODE_SECONDS
    assert shown["qr"] == qr_data_uri(code) and shown["qr"].startswith("data:image/svg+xml")

    ann = till.shop.served.login("ann")
    stamped = till.stamp(ann, shown["code"])
    assert stamped.status_code == 200, stamped.text
    assert stamped.json() == {"stamps": 1, "stampsPerCard": 3, "cardsFilled": 0, "filled": False, "reward": None,
                              "points": 2}
    # The replay (a screenshot, the same scan sent again) and anyone else's scan of it: 409.
    for who in (ann, till.shop.served.login("bob")):
        replay = till.stamp(who, shown["code"])
        assert (replay.status_code, replay.json()["error"]["code"]) == (409, "code_used")
    assert [(r["alipay_user"], r["nonce"], r["store"]) for r in till.rows(STAMPS)] == [
        (sandbox_user_id("ann"), shown["nonce"], "main")]
    assert [(r["reason"], r["ref"], r["delta"], r["balance"]) for r in till.rows(LEDGER)] == [
        ("stamp", shown["nonce"], 2, 2)]
    # The till's next poll says the code was used, and shows a new one.
    after = till.code(cookie, since=shown["nonce"])
    assert after["used"] is True and after["nonce"] != shown["nonce"] and after["code"] != shown["code"]


def test_forged_foreign_or_garbage_codes_are_400(till: Till) -> None:
    ann = till.shop.served.login("ann")
    genuine = fresh_code()
    payload, mac = genuine.rsplit(".", 2)[1:]
    other_key = SessionTokens(b"another-secret-of-another-server-0123", timedelta(hours=2),
                              lambda: NOON).derived_key(KEY_PURPOSE)
    for text in ("hello", "", "mpforge-stamp:v1.x.y", genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),
                 genuine.replace(payload, payload[:-2] + "xx"), f"mpforge-stamp:v2.{payload}.{mac}",
                 fresh_code(key=other_key), fresh_code(appid=OTHER_APPID), fresh_code(store="west"),
                 "mpforge-stamp:v1.ü.ß"):
        answer = till.stamp(ann, text)
        expected = (422, "invalid_body") if text == "" else (400, "invalid_code")
        assert (answer.status_code, answer.json()["error"]["code"]) == expected, text
    assert till.rows(STAMPS) == [] and till.rows(CUSTOMERS) == []
    assert till.stamp(ann, genuine).status_code == 200  # the genuine one, untouched, still works


def test_the_code_key_is_derived_from_the_servers_secret() -> None:
    """Every process with the secret makes the same key; another purpose, or another
    secret, another key; the key is not the secret."""
    again = SessionTokens(SECRET, timedelta(minutes=5), lambda: NOON)
    assert again.derived_key(KEY_PURPOSE) == KEY and len(KEY) == 32
    assert again.derived_key("something else") != KEY and SECRET[:32] != KEY
    assert SessionTokens(SECRET + b"!", timedelta(minutes=5), lambda: NOON).derived_key(KEY_PURPOSE) != KEY


def test_a_code_is_read_only_whole_and_as_signed() -> None:
    nonce = new_nonce(NOON)
    code = sign_code(KEY, APPID, "main", nonce)
    assert read_code(KEY, code.text) == code and code.expires == NOON
    assert sign_code(KEY, APPID, "main", nonce) == code  # the same text every time: nothing stored
    # Signed with the right key but saying another expiry than its nonce: not ours.
    body = json.dumps({"app": APPID, "store": "main", "nonce": nonce, "exp": int(NOON.timestamp()) + 3600},
                      separators=(",", ":"), sort_keys=True)
    payload = base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode()
    mac = base64.urlsafe_b64encode(hmac.new(KEY, f"v1.{payload}".encode(), hashlib.sha256).digest()).rstrip(b"=")
    assert read_code(KEY, f"mpforge-stamp:v1.{payload}.{mac.decode()}") is None
    with pytest.raises(ValueError, match="is not a till code's nonce"):
        sign_code(KEY, APPID, "main", "12345")


def test_an_expired_code_is_410_after_a_short_grace(till: Till) -> None:
    ann, bob = till.shop.served.login("ann"), till.shop.served.login("bob")
    late, later = fresh_code(), fresh_code()
    till.shop.served.clock.now = NOON + timedelta(seconds=CODE_SECONDS) + GRACE  # scanned in its last moment
    assert till.stamp(ann, late).status_code == 200
    till.shop.served.clock.now += timedelta(seconds=1)
    expired = till.stamp(bob, later)
    assert (expired.status_code, expired.json()["error"]["code"]) == (410, "code_expired")
    assert len(till.rows(STAMPS)) == 1


def test_the_daily_limit_counts_a_china_day_and_leaves_the_code_for_others(till: Till) -> None:
    ann, bob = till.shop.served.login("ann"), till.shop.served.login("bob")
    assert till.stamp(ann, fresh_code()).status_code == 200
    second = fresh_code()
    refused = till.stamp(ann, second)
    assert (refused.status_code, refused.json()["error"]["code"]) == (429, "daily_limit")
    assert till.stamp(bob, second).status_code == 200  # the refused scan did not use the code up
    # 23:59 in China is still the same day; 00:00 the next.
    till.shop.served.clock.now = NOON + timedelta(hours=11, minutes=59)
    ann = till.shop.served.login("ann")  # a session lasts two hours
    assert till.stamp(ann, fresh_code(seconds=12 * 3600)).status_code == 429
    till.shop.served.clock.now = NOON + timedelta(hours=12)
    assert till.stamp(ann, fresh_code(seconds=13 * 3600)).json()["stamps"] == 2


def test_a_full_card_gives_the_reward_coupon_through_the_sandbox(till: Till) -> None:
    answers = []
    for day in range(4):
        till.shop.served.clock.now = NOON + timedelta(days=day)
        ann = till.shop.served.login("ann")
        code = sign_code(KEY, APPID, "east", new_nonce(till.shop.served.clock.now + timedelta(seconds=30))).text
        answer = till.stamp(ann, code)
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
    assert [(a["stamps"], a["cardsFilled"], a["filled"], a["points"]) for a in answers] == [
        (1, 0, False, 2), (2, 0, False, 4), (0, 1, True, 6), (1, 1, False, 8)]
    reward = answers[2]["reward"]
    assert (reward["result"], reward["couponId"]) == ("CLAIMED", "reward") and reward["voucherCode"]
    vouchers = till.shop.served.vouchers("reward")
    assert [(v.voucher_code, v.user_id) for v in vouchers] == [(reward["voucherCode"], sandbox_user_id("ann"))]
    customer = till.rows(CUSTOMERS)[0]
    assert (customer["stamps"], customer["cards_filled"], customer["points"], customer["earned"]) == (1, 1, 8, 8)
    # The reward was claimed by its request: the task finds nothing owed.
    claim_owed_rewards(till.shop.served.app.state.api.context)
    assert [c["coupon_id"] for c in till.rows(CLAIMS)] == ["reward"]


def test_a_reward_its_request_never_claimed_is_reserved_by_the_task(till: Till) -> None:
    """The process stopped between the stamp's commit and the reward's claim: the stamp
    row says the card filled, and the task reserves the reward, once."""
    section = till.shop.served.app.state.api.context.sections[APPID]["membership"]
    card, ann = section.stamp_card, AlipayUser("user_id", sandbox_user_id("ann"))
    storage = till.shop.served.storage
    filled = []
    for day in range(3):  # stamps stored as the route stores them, without the route's claim
        now = NOON + timedelta(days=day)
        code = read_code(KEY, sign_code(KEY, APPID, "main", new_nonce(now + timedelta(seconds=30))).text)
        assert code is not None
        filled.append((code.nonce, add_stamp(storage, code, ann, card, 2, now).filled))
    assert [f for _, f in filled] == [False, False, True]
    context = till.shop.served.app.state.api.context
    till.shop.served.clock.now = NOON + timedelta(days=2, minutes=1)  # the route may still be claiming it
    claim_owed_rewards(context)
    assert till.rows(CLAIMS) == []
    till.shop.served.clock.now = NOON + timedelta(days=2, minutes=3)
    claim_owed_rewards(context)
    claim_owed_rewards(context)
    assert [(c["coupon_id"], c["idempotency_key"], c["status"]) for c in till.rows(CLAIMS)] == [
        ("reward", f"membership-stamp-{filled[2][0]}", "pending")]
    assert [r["filled"] for r in till.rows(STAMPS)] == [False, False, True]


def test_one_code_scanned_at_once_by_many_stamps_once(till: Till) -> None:
    code = fresh_code()
    tokens = [till.shop.served.login(name) for name in ("ann", "bob", "cy", "dee")]
    answers = till.shop.api.gather([("POST", STAMPS_URL, {"json": {"code": code},
                                                          "headers": {"Authorization": f"Bearer {t}"}})
                                    for t in tokens])
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"code_used"}
    assert len(till.rows(STAMPS)) == 1 and len(till.rows(LEDGER)) == 1
    # One customer's two scans of two codes at once: the day's limit holds.
    ann = tokens[0]
    both = till.shop.api.gather([("POST", STAMPS_URL, {"json": {"code": fresh_code()},
                                                       "headers": {"Authorization": f"Bearer {ann}"}})
                                 for _ in range(2)])
    winner = next(a for a in answers if a.status_code == 200)
    already = 1 if winner.request.headers["authorization"] == f"Bearer {ann}" else 0
    assert sorted(a.status_code for a in both) == ([429, 429] if already else [200, 429])


# --- the till page ---------------------------------------------------------------------------

def test_the_till_needs_the_staff_login(till: Till) -> None:
    page = till.shop.api.get(TILL)
    assert page.status_code == 200 and 'id="login-form"' in page.text and "集点码" in page.text
    refused = till.shop.api.get(f"{TILL}/code")
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "login_required")
    cookie = till.cookie()
    shown = till.shop.api.get(TILL, headers=cookie)
    assert 'id="qr"' in shown.text and "集点卡" in shown.text
    assert "script-src 'self'" in shown.headers["content-security-policy"]
    assert till.shop.api.get(f"{TILL}/static/till.js", headers=cookie).status_code == 200
    assert till.shop.api.get(f"{TILL}/static/other.js", headers=cookie).status_code == 404
    unknown = till.shop.api.get(f"{TILL}/code", params={"store": "west"}, headers=cookie)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_store")


def test_the_till_code_stays_until_used_or_expired(till: Till) -> None:
    cookie = till.cookie()
    first = till.code(cookie, store="east")
    assert first["store"] == "east"
    till.shop.served.clock.now = NOON + timedelta(seconds=10)
    same = till.code(cookie, store="east", since=first["nonce"])
    assert (same["code"], same["used"], same["secondsLeft"]) == (first["code"], False, CODE_SECONDS - 10)
    till.shop.served.clock.now = NOON + timedelta(seconds=CODE_SECONDS)
    expired = till.code(cookie, store="east", since=first["nonce"])
    assert expired["nonce"] != first["nonce"] and expired["used"] is False
    # A made-up nonce claiming a long life, or none at all, gets a fresh code.
    forged = till.code(cookie, since=new_nonce(till.shop.served.clock.now + timedelta(days=1)))
    assert forged["secondsLeft"] == CODE_SECONDS
    assert till.code(cookie, since="nonsense")["secondsLeft"] == CODE_SECONDS


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # the HTTP tests above cover PostgreSQL
def test_the_till_in_chromium(till: Till, strict_page: Any) -> None:
    """Under the page's own Content-Security-Policy: log in, the QR shows; a customer's
    scan of it (the code the page shows, posted as the mini-program would) makes the page
    say 已集点 and show a new code."""
    SCREENSHOTS.mkdir(exist_ok=True)
    tab = strict_page
    tab.set_viewport_size({"width": 1024, "height": 768})
    violations: list[str] = []
    tab.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    tab.goto(f"{till.shop.live.url}{TILL}")
    tab.fill("#token", STAFF_TOKEN)
    tab.click("#login-button")
    qr = tab.locator("#qr")
    qr.wait_for(timeout=10_000)
    tab.locator(".live", has_text="实时更新").wait_for(timeout=10_000)
    nonce = qr.get_attribute("data-nonce")
    assert nonce and tab.locator("#store").input_value() == "main"
    box = qr.bounding_box()
    assert box is not None and box["width"] >= 300  # big enough to scan across a counter
    tab.screenshot(path=str(SCREENSHOTS / "1-code.png"))

    # The customer's phone reads the QR off the screen: zbarimg reads it off the screenshot.
    if shutil.which("zbarimg") is None:
        pytest.fail("zbarimg is required (Debian package zbar-tools; .ci/run installs it)")
    qr.screenshot(path=str(SCREENSHOTS / "qr.png"))
    scanned = subprocess.run(["zbarimg", "-q", "--raw", str(SCREENSHOTS / "qr.png")], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert scanned == sign_code(KEY, APPID, "main", nonce).text
    assert till.stamp(till.shop.served.login("ann"), scanned).status_code == 200
    tab.locator("#stamped", has_text="已集点").wait_for(timeout=10_000)
    tab.screenshot(path=str(SCREENSHOTS / "2-stamped.png"))
    assert qr.get_attribute("data-nonce") != nonce
    tab.set_viewport_size({"width": 390, "height": 844})  # a phone as the till
    tab.screenshot(path=str(SCREENSHOTS / "3-phone.png"), full_page=True)
    assert violations == [] and tab.errors == []
