"""`mpforge serve`'s back end end to end, on SQLite and on PostgreSQL: httpx against the
ASGI app, the real AlipayClient (Alipay's SDK) talking to the sandbox gateway over HTTP
on 127.0.0.N:80, and the database read back to check what was stored.

- Login with an auth code gives a session token; a bad code is 401 with Alipay's sub_code.
- A claim issues one voucher per Idempotency-Key, however often the key is replayed;
  the per-user limit, the stock, the dates and the audience hold (followers: Alipay is
  asked; new customers: decided in the reservation; members: refused); Alipay refusing
  fails the claim and gives the stock back; a timeout is retried with the same
  out_biz_no into exactly one voucher, or leaves the claim pending for the same key.
- GET me/claims lists the user's vouchers and reservations, never another user's.
- Concurrent claims never oversell nor issue twice, nor give one user two new
  customers' coupons, on either database.
- Forged, expired or other apps' tokens are 401, unknown apps 404, bad bodies and
  headers 400/422 with nothing stored, a database that is down 503 with nothing stored.
- Events are stored and rate limited; content has an ETag; the OpenAPI document lists
  every route and describes the bodies actually sent; no CORS headers; no secret in a
  response or a log record.

Content versions and `mpforge publish`: test_serve_content.py. The fixtures are
serve_fixtures.py's; PostgreSQL is a throwaway cluster (tests/pg_cluster.py):
without the server binaries these tests skip, except in CI (`CI` set), where they fail.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from helpers import REPO
from serve_support import (
    APPID,
    NOON,
    OTHER_APPID,
    PUBLISH_TOKEN,
    SECRET,
    Clock,
    Database,
    Served,
    claim_request,
    coupon,
    unavailable,
    write_spec,
)
from sqlalchemy import select
from starlette.routing import Route

from builder.errors import UserError
from builder.serve.app import Limits, create_app
from builder.serve.merchant import AlipayConfig, load_merchant
from builder.serve.rate_limit import TokenBuckets
from builder.serve.sandbox_state import Faults, sandbox_open_id, sandbox_user_id
from builder.serve.session_tokens import SessionTokens
from builder.serve.storage import CLAIMS, COUNTERS, EVENTS, METADATA, MIGRATIONS, USERS, AlipayUser, Storage

pytest_plugins = ["serve_fixtures"]  # database, postgres, serve

# --- login -------------------------------------------------------------------------------------

def test_login_gives_a_session_token_and_remembers_the_user_once(serve: Callable[..., Served]) -> None:
    served = serve()
    first, again = served.login("7"), served.login("7")
    assert first.startswith("v1.") and first.count(".") == 2
    response = served.api.post(f"/api/v1/{APPID}/session", json={"authCode": "sandbox-user-7"})
    assert response.json()["tokenType"] == "Bearer" and response.json()["expiresIn"] == 7200
    assert response.headers["cache-control"] == "no-store"
    users = served.rows(USERS)
    assert [(u["appid"], u["user_kind"], u["alipay_user"]) for u in users] == [
        (APPID, "user_id", sandbox_user_id("7"))]
    assert users[0]["created_at"] == NOON
    assert again  # a second login of the same user adds no row


def test_a_bad_auth_code_is_401_with_alipays_sub_code(serve: Callable[..., Served]) -> None:
    served = serve()
    response = served.api.post(f"/api/v1/{APPID}/session", json={"authCode": "0b3d7e1c9a4f"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_auth_code"
    assert response.json()["error"]["alipaySubCode"] == "isv.code-invalid"
    assert served.rows(USERS) == []


def test_a_user_known_by_open_id_only_logs_in_and_claims(serve: Callable[..., Served]) -> None:
    """Apps on Alipay's OpenID scheme get no user_id: the open_id is the user."""
    served = serve((coupon("welcome", per_user_limit=1),))
    served.sandbox.state.open_id_apps = frozenset({APPID})
    token = served.login("7")
    open_id = sandbox_open_id(APPID, sandbox_user_id("7"))
    assert [(u["user_kind"], u["alipay_user"]) for u in served.rows(USERS)] == [("open_id", open_id)]
    assert served.claim(token, key="a").status_code == 201
    assert served.claim(token, key="b").json()["result"] == "LIMIT_REACHED"
    [voucher] = served.vouchers()
    assert voucher.user_id == sandbox_user_id("7")  # Alipay knows whom the open_id names
    assert ("open_id", f'"{open_id}"') in voucher.request
    assert served.rows(CLAIMS)[0]["user_kind"] == "open_id"


# --- claims -------------------------------------------------------------------------------------

def test_claim_and_replay_the_same_idempotency_key(serve: Callable[..., Served]) -> None:
    served = serve((coupon("welcome", stock=5, per_user_limit=3),))
    token = served.login("7")
    first = served.claim(token, key="tap-1")
    assert first.status_code == 201, first.text
    assert first.json()["result"] == "CLAIMED" and first.headers["cache-control"] == "no-store"
    again = served.claim(token, key="tap-1")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    [voucher] = served.vouchers()
    assert voucher.voucher_code == first.json()["voucherCode"] and voucher.user_id == sandbox_user_id("7")
    [claim] = served.rows(CLAIMS)
    assert (claim["status"], claim["voucher_code"], claim["idempotency_key"], claim["route"]) == (
        "issued", voucher.voucher_code, "tap-1", "send")
    assert len(claim["out_biz_no"]) == 32 and served.taken() == 1
    # A new key is a new claim.
    second = served.claim(token, key="tap-2")
    assert second.status_code == 201 and second.json()["voucherCode"] != first.json()["voucherCode"]
    assert len(served.vouchers()) == 2 and served.taken() == 2


def test_the_per_user_limit_holds(serve: Callable[..., Served]) -> None:
    served = serve((coupon("welcome", stock=10, per_user_limit=2),))
    token = served.login("7")
    assert [served.claim(token, key=k).status_code for k in ("a", "b")] == [201, 201]
    third = served.claim(token, key="c")
    assert third.status_code == 409 and third.json()["result"] == "LIMIT_REACHED"
    assert served.claim(token, key="c").json() == third.json()  # the same answer on replay
    assert served.claim(served.login("8"), key="c").status_code == 201  # another user's key space
    assert served.taken() == 3 and len(served.vouchers()) == 3
    assert [c["status"] for c in served.rows(CLAIMS)] == ["issued", "issued", "failed", "issued"]


def test_stock_runs_out(serve: Callable[..., Served]) -> None:
    served = serve((coupon("welcome", stock=2),))
    answers = [served.claim(served.login(str(n)), key="k") for n in range(3)]
    assert [a.json()["result"] for a in answers] == ["CLAIMED", "CLAIMED", "SOLD_OUT"]
    assert answers[2].status_code == 409
    assert served.taken() == 2 and len(served.vouchers()) == 2


def test_alipay_refusing_fails_the_claim_and_gives_the_stock_back(serve: Callable[..., Served]) -> None:
    served = serve((coupon("welcome", stock=5),))
    # The activity Alipay holds has less stock than the spec says (they drift apart).
    served.sandbox.state.add_activity("act-welcome", stock=1, per_user_limit=1)
    assert served.claim(served.login("1")).status_code == 201
    refused = served.claim(served.login("2"), key="k2")
    assert refused.status_code == 409
    assert (refused.json()["result"], refused.json()["alipaySubCode"]) == ("REFUSED", "VOUCHER_STOCK_NOT_ENOUGH")
    assert served.taken() == 1  # the refused claim's unit came back
    failed = served.rows(CLAIMS)[1]
    assert (failed["status"], failed["error"], failed["alipay_sub_code"]) == (
        "failed", "ALIPAY_REFUSED", "VOUCHER_STOCK_NOT_ENOUGH")
    # The stock Alipay has again is claimable; the refusal is not asked again on replay.
    served.sandbox.state.add_activity("act-welcome", stock=5, per_user_limit=1)
    assert served.claim(served.login("2"), key="k2").json() == refused.json()
    assert served.claim(served.login("2"), key="k3").status_code == 201
    assert served.taken() == 2


def _clear_faults_once_issued(served: Served) -> threading.Thread:
    """Once the sandbox has issued the voucher (its answer still held back by the delay),
    let the next call through: the first attempt times out, the retry succeeds."""
    def watch() -> None:
        deadline = time.monotonic() + 10
        while not served.vouchers() and time.monotonic() < deadline:
            time.sleep(0.005)
        served.sandbox.state.faults = Faults()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def test_a_timeout_is_retried_with_the_same_out_biz_no_into_one_voucher(serve: Callable[..., Served]) -> None:
    served = serve(timeout=0.5)
    token = served.login("7")
    served.sandbox.state.faults = Faults(delay_seconds=2.0)
    watcher = _clear_faults_once_issued(served)
    response = served.claim(token)
    watcher.join()
    assert response.status_code == 201, response.text
    [voucher] = served.vouchers()
    assert response.json()["voucherCode"] == voucher.voucher_code
    assert served.rows(CLAIMS)[0]["status"] == "issued" and served.taken() == 1


def test_alipay_unavailable_leaves_the_claim_pending_for_the_same_key(serve: Callable[..., Served]) -> None:
    served = serve(timeout=0.3)
    token = served.login("7")
    served.sandbox.state.faults = Faults(delay_seconds=1.0)  # every attempt times out
    pending = served.claim(token)
    assert pending.status_code == 503 and pending.headers["retry-after"] == "1"
    assert pending.json()["result"] == "PENDING"
    [claim] = served.rows(CLAIMS)
    assert claim["status"] == "pending" and served.taken() == 1
    assert len(served.vouchers()) == 1  # Alipay did issue it; the answers never came back
    served.sandbox.state.faults = Faults()
    done = served.claim(token)
    assert done.status_code == 201
    [voucher] = served.vouchers()
    assert done.json()["voucherCode"] == voucher.voucher_code
    assert served.rows(CLAIMS)[0]["out_biz_no"] == claim["out_biz_no"] and served.taken() == 1
    assert served.claim(token).json() == done.json()


def test_alipay_busy_issues_nothing_until_the_retry(serve: Callable[..., Served]) -> None:
    served = serve()
    token = served.login("7")
    served.sandbox.state.faults = Faults(busy=True)  # 20000 isp.unknow-error
    assert served.claim(token).status_code == 503
    assert served.vouchers() == []
    served.sandbox.state.faults = Faults()
    assert served.claim(token).status_code == 201 and len(served.vouchers()) == 1


def test_the_plugin_route_hands_out_a_reserved_out_biz_no(serve: Callable[..., Served]) -> None:
    served = serve((coupon("welcome", stock=5, per_user_limit=1, claim_route="plugin"),))
    token = served.login("7")
    reserved = served.claim(token, key="k1")
    assert reserved.status_code == 201, reserved.text
    body = reserved.json()
    [claim] = served.rows(CLAIMS)
    assert (body["result"], body["activityId"], body["outBizNo"]) == ("RESERVED", "act-welcome", claim["out_biz_no"])
    assert (claim["status"], claim["route"]) == ("pending", "plugin")
    assert served.vouchers() == []  # the plugin issues it, not the server
    assert served.claim(token, key="k1").json() == body
    assert served.claim(token, key="k2").json()["result"] == "LIMIT_REACHED"
    assert served.taken() == 1
    content = served.api.get(f"/api/v1/{APPID}/content").json()
    assert content["coupons"][0]["claimRoute"] == "plugin"


def test_dates_audience_and_unknown_coupons_are_refused_before_anything_is_stored(
        serve: Callable[..., Served]) -> None:
    served = serve((coupon("later", validity={"start": "2026-03-03", "end": "2026-04-01"}),
                    coupon("over", validity={"start": "2026-02-01", "end": "2026-03-01"}),
                    coupon("today", validity={"start": "2026-03-01", "end": "2026-03-02"}),
                    coupon("members", audience="members")))
    token = served.login("7")
    assert served.claim(token, "later").json()["error"]["code"] == "coupon_not_started"
    assert served.claim(token, "over").json()["error"]["code"] == "coupon_expired"
    assert served.claim(token, "over").status_code == 409
    members = served.claim(token, "members")
    # The membership plugin answers who is a member: no one here holds the card.
    assert members.status_code == 403 and members.json()["error"]["code"] == "not_member"
    assert served.claim(token, "nope").json()["error"]["code"] == "unknown_coupon"
    assert served.rows(CLAIMS) == [] and {r["taken"] for r in served.rows(COUNTERS)} == {0}
    claimed = served.claim(token, "today")
    assert claimed.status_code == 201  # the last day counts, in China's time
    served.clock.now = NOON + timedelta(hours=12)  # 00:00 on 2026-03-03 in China
    assert served.claim(served.login("8"), "today").json()["error"]["code"] == "coupon_expired"
    replayed = served.claim(served.login("7"), "today")  # the key's claim stands after the coupon ended
    assert (replayed.status_code, replayed.json()) == (201, claimed.json())


def test_a_followers_coupon_asks_alipay_whether_the_user_follows(serve: Callable[..., Served]) -> None:
    served = serve((coupon("gift", audience="followers", stock=5, per_user_limit=2),))
    token, user_id = served.login("7"), sandbox_user_id("7")
    refused = served.claim(token, "gift", key="a")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_following"
    assert "follow" in refused.json()["error"]["message"]
    assert served.rows(CLAIMS) == [] and served.taken("gift") == 0
    served.sandbox.state.set_following(APPID, user_id)
    claimed = served.claim(token, "gift", key="a")
    assert claimed.status_code == 201 and claimed.json()["result"] == "CLAIMED"
    # A replay is answered as before without asking Alipay, which could not answer now.
    served.sandbox.state.set_following(APPID, user_id, False)
    served.sandbox.state.faults = Faults(busy=True)
    replayed = served.claim(token, "gift", key="a")
    assert (replayed.status_code, replayed.json()) == (201, claimed.json())
    unavailable_now = served.claim(token, "gift", key="b")  # a new claim must be checked: 503, nothing stored
    assert unavailable_now.status_code == 503 and unavailable_now.json()["error"]["code"] == "alipay_unavailable"
    assert unavailable_now.headers["retry-after"] == "1"
    served.sandbox.state.faults = Faults()
    assert served.claim(token, "gift", key="b").json()["error"]["code"] == "not_following"
    assert len(served.rows(CLAIMS)) == 1 and served.taken("gift") == 1
    # A user known by open_id only is asked about by open_id.
    served.sandbox.state.open_id_apps = frozenset({APPID})
    other = served.login("8")
    assert served.claim(other, "gift", key="a").json()["error"]["code"] == "not_following"
    served.sandbox.state.set_following(APPID, sandbox_user_id("8"))
    assert served.claim(other, "gift", key="a").status_code == 201
    assert served.rows(CLAIMS)[-1]["user_kind"] == "open_id"


def test_the_sandbox_makes_a_user_follow_over_http_and_the_api_has_no_such_route(
        serve: Callable[..., Served]) -> None:
    served = serve((coupon("gift", audience="followers"),))
    token = served.login("alice")
    follow_url = served.sandbox.alipay.gateway_url.replace("/gateway.do", "/sandbox/follow")
    answer = httpx.post(follow_url, json={"appId": APPID, "login": "alice"})
    assert answer.status_code == 200
    assert answer.json() == {"appId": APPID, "userId": sandbox_user_id("alice"), "following": True}
    assert served.claim(token, "gift").status_code == 201
    assert httpx.post(follow_url, json={"appId": APPID, "login": "alice", "following": False}).json()["following"] \
        is False
    assert served.claim(token, "gift", key="k2").json()["error"]["code"] == "not_following"
    for body, status in [({"appId": "2021009999999999", "login": "alice"}, 404), ({"appId": APPID}, 400),
                         ({"appId": APPID, "login": "alice", "following": "yes"}, 400), ([APPID], 400)]:
        refused = httpx.post(follow_url, json=body)
        assert refused.status_code == status and refused.json()["error"]["message"], body
    assert httpx.post(follow_url, content=b"{not json").status_code == 400
    # A browser page (the preview) may call it: this route answers CORS preflights.
    preflight = httpx.options(follow_url, headers={"Origin": "http://127.0.0.1:8750",
                                                   "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-headers"] == "Content-Type"
    assert answer.headers["access-control-allow-origin"] == "*"
    # The back end's own API never lets a caller make anyone follow.
    assert served.api.post("/sandbox/follow", json={"appId": APPID, "login": "bob"}).status_code == 404
    assert served.api.post(f"/api/v1/{APPID}/sandbox/follow", json={"login": "bob"}).status_code == 404


def test_a_new_customers_coupon_goes_to_users_without_another_claim(serve: Callable[..., Served]) -> None:
    served = serve((coupon("welcome", stock=10), coupon("newbie", audience="new_customers", per_user_limit=2),
                    coupon("newbie2", audience="new_customers"), coupon("plug", claim_route="plugin")))
    first = served.login("1")
    assert served.claim(first, "newbie", key="a").json()["result"] == "CLAIMED"
    assert served.claim(first, "newbie", key="b").json()["result"] == "CLAIMED"  # its own limit is 2
    assert served.claim(first, "newbie", key="c").json()["result"] == "LIMIT_REACHED"
    refused = served.claim(first, "newbie2", key="d")
    assert (refused.status_code, refused.json()["result"]) == (409, "NOT_ELIGIBLE")
    assert "new customers" in refused.json()["message"]
    assert served.claim(first, "newbie2", key="d").json() == refused.json()  # the same answer on replay
    assert served.claim(first, "welcome", key="e").json()["result"] == "CLAIMED"  # everyone's coupon
    # An issued or reserved claim of another coupon makes a user no longer new; a failed one does not.
    issued, reserved, failed = served.login("2"), served.login("3"), served.login("4")
    assert served.claim(issued, "welcome").status_code == 201
    assert served.claim(issued, "newbie", key="n").json()["result"] == "NOT_ELIGIBLE"
    assert served.claim(reserved, "plug").json()["result"] == "RESERVED"
    assert served.claim(reserved, "newbie", key="n").json()["result"] == "NOT_ELIGIBLE"
    served.sandbox.state.add_activity("act-welcome", stock=0, per_user_limit=1)
    assert served.claim(failed, "welcome").json()["result"] == "REFUSED"
    assert served.claim(failed, "newbie", key="n").json()["result"] == "CLAIMED"
    assert (served.taken("newbie"), served.taken("newbie2"), served.taken("welcome")) == (3, 0, 2)
    assert [c["error"] for c in served.rows(CLAIMS) if c["coupon_id"] == "newbie2"] == ["NOT_ELIGIBLE"]


def test_two_new_customers_coupons_at_once_give_a_user_one(serve: Callable[..., Served]) -> None:
    """Each user claims two new customers' coupons many times at the same moment: the
    user's row lock makes the claims of both coupons queue, so one voucher each."""
    served = serve((coupon("newbie", audience="new_customers", stock=50),
                    coupon("newbie2", audience="new_customers", stock=50)))
    tokens = [served.login(str(n)) for n in range(4)]
    url = f"/api/v1/{APPID}/coupons/{{}}/claims"
    claims = served.api.gather([("POST", url.format(coupon_id), claim_request(token, f"{coupon_id}-{n}"))
                                for token in tokens for n in range(5) for coupon_id in ("newbie", "newbie2")])
    results = [r.json()["result"] for r in claims]
    assert results.count("CLAIMED") == 4, results
    assert set(results) == {"CLAIMED", "LIMIT_REACHED", "NOT_ELIGIBLE"}
    vouchers = served.vouchers("newbie") + served.vouchers("newbie2")
    assert len({v.user_id for v in vouchers}) == len(vouchers) == 4
    assert served.taken("newbie") + served.taken("newbie2") == 4


def test_me_claims_lists_the_users_vouchers_and_reservations_and_no_one_elses(
        serve: Callable[..., Served]) -> None:
    served = serve((coupon("welcome", stock=9, per_user_limit=2),
                    coupon("spring", kind="discount", value=None, rate=0.85, min_spend=50,
                           validity={"start": "2026-03-01", "end": "2026-03-31"}),
                    coupon("plug", claim_route="plugin"), coupon("late")), timeout=0.3)
    token, other = served.login("7"), served.login("8")
    mine = f"/api/v1/{APPID}/me/claims"
    assert served.api.get(mine, headers={"Authorization": f"Bearer {token}"}).json() == {"claims": []}
    welcome = served.claim(token, "welcome", key="a").json()
    served.clock.now = NOON + timedelta(hours=13)  # 01:00 on 2026-03-03 in China
    token, other = served.login("7"), served.login("8")  # the earlier sessions have expired
    served.claim(token, "spring", key="b")
    served.claim(token, "plug", key="c")
    served.claim(other, "welcome", key="a")
    served.claim(token, "spring", key="d")  # LIMIT_REACHED: failed, not listed
    served.sandbox.state.faults = Faults(delay_seconds=1.0)
    assert served.claim(token, "late", key="e").json()["result"] == "PENDING"  # not listed until issued
    served.sandbox.state.faults = Faults()
    response = served.api.get(mine, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    claims = response.json()["claims"]
    assert [(c["couponId"], c["status"]) for c in claims] == [("plug", "reserved"), ("spring", "issued"),
                                                              ("welcome", "issued")]
    plug, spring, first = claims
    assert plug["voucherCode"] is None and plug["expiresOn"] == "2026-03-10"  # claimed on 03-03 in China, + 7
    [reservation] = [r for r in served.rows(CLAIMS) if r["coupon_id"] == "plug"]
    assert (plug["activityId"], plug["outBizNo"]) == ("act-plug", reservation["out_biz_no"])  # for the plugin
    assert (spring["valueText"], spring["thresholdText"], spring["expiresOn"]) == ("8.5折", "满50元可用", "2026-03-31")
    assert first == {"claimId": welcome["claimId"], "couponId": "welcome", "status": "issued",
                     "voucherCode": welcome["voucherCode"], "activityId": None, "outBizNo": None,
                     "claimedAt": "2026-03-02T04:00:00Z",
                     "expiresOn": "2026-03-09", "title": "welcome 5 元", "valueText": "¥5", "thresholdText": "无门槛"}
    others = served.api.get(mine, headers={"Authorization": f"Bearer {other}"}).json()["claims"]
    assert [c["couponId"] for c in others] == ["welcome"] and others[0]["voucherCode"] != first["voucherCode"]
    assert served.claim(token, "late", key="e").status_code == 201  # issued now: listed
    assert served.api.get(mine, headers={"Authorization": f"Bearer {token}"}).json()["claims"][0]["couponId"] == "late"
    for headers in ({}, {"Authorization": f"Bearer {token}x"}, {"Authorization": f"Basic {token}"}):
        assert served.api.get(mine, headers=headers).status_code == 401


def test_an_idempotency_key_is_one_claim(serve: Callable[..., Served]) -> None:
    served = serve((coupon("welcome"), coupon("other")))
    token = served.login("7")
    assert served.claim(token, "welcome", key="k").status_code == 201
    for coupon_id, body in [("other", None), ("welcome", {"chInfo": "ch_life"})]:
        reused = served.claim(token, coupon_id, key="k", body=body)
        assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert len(served.rows(CLAIMS)) == 1 and served.taken("other") == 0


def test_ch_info_goes_to_alipay_and_into_the_claim(serve: Callable[..., Served]) -> None:
    served = serve()
    response = served.claim(served.login("7"), body={"chInfo": "ch_poster_spring"})
    assert response.status_code == 201
    [voucher] = served.vouchers()
    assert ("ch_info", '"ch_poster_spring"') in voucher.request
    assert served.rows(CLAIMS)[0]["ch_info"] == "ch_poster_spring"


# --- who may ask -----------------------------------------------------------------------------

def _forged(token: str) -> list[str]:
    version, payload, mac = token.split(".")
    other_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    return ["", "garbage", f"{version}.{payload}", f"{version}.{other_payload}.{mac}",
            f"{version}.{payload}.{mac[:-2]}xx", f"v2.{payload}.{mac}", f"{version}.{payload}.{mac}é"]


def test_missing_forged_expired_and_other_apps_tokens_are_401(serve: Callable[..., Served]) -> None:
    served = serve(other_app=True)
    token = served.login("7")
    other_apps = served.login("7", appid=OTHER_APPID)
    tampered = [*_forged(token), other_apps]
    signed_elsewhere = SessionTokens(b"x" * 32, timedelta(hours=2), Clock()).issue(APPID,
                                                                                 AlipayUser("user_id", "2088"))
    for bad in [*tampered, signed_elsewhere]:
        response = served.claim(bad)
        assert response.status_code == 401, bad
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    assert served.claim(None).status_code == 401
    response = served.api.post(f"/api/v1/{APPID}/coupons/welcome/claims",
                               headers={"Authorization": f"Basic {token}", "Idempotency-Key": "k"})
    assert response.status_code == 401
    served.clock.now = NOON + timedelta(hours=2)
    assert served.claim(token).status_code == 401  # expired
    assert served.rows(CLAIMS) == []


def test_an_unknown_app_id_is_404(serve: Callable[..., Served]) -> None:
    served = serve()
    token = served.login("7")
    for method, path in [("POST", "session"), ("POST", "coupons/welcome/claims"), ("POST", "events"),
                         ("GET", "content")]:
        response = served.api.request(method, f"/api/v1/2021009999999999/{path}",
                                      headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k"},
                                      json={"authCode": "sandbox-user-7"} if method == "POST" else None)
        assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_app", path
    assert served.api.get("/api/v2/nothing").json()["error"]["code"] == "not_found"
    assert served.api.get(f"/api/v1/{APPID}/session").status_code == 405


def test_bad_bodies_and_headers_are_refused_and_nothing_is_stored(serve: Callable[..., Served]) -> None:
    served = serve()
    token = served.login("7")
    claims = [
        (None, None, 400, "missing_idempotency_key"),
        ("has space", None, 400, "invalid_idempotency_key"),
        ("k" * 65, None, 400, "invalid_idempotency_key"),
        ("k", b"{not json", 400, "invalid_json"),
        ("k", {"chInfo": 5}, 422, "invalid_body"),
        ("k", {"chInfo": ""}, 422, "invalid_body"),
        ("k", {"ch_info": "snake case is not the API's"}, 422, "invalid_body"),
        ("k", [1, 2], 422, "invalid_body"),
        ("k", b"x" * (65 * 1024), 413, "body_too_large"),
    ]
    for key, body, status, code in claims:
        response = served.claim(token, key=key, body=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (key, body)
    wrong = served.claim(token, body={"chInfo": 5}).json()["error"]["fields"]
    assert wrong == [{"location": "chInfo", "message": "Input should be a valid string"}]
    event = {"kind": "launch", "at": 1_760_000_000_000}
    events = [
        {"anonymousId": "device-0001", "events": [event] * 51},
        {"anonymousId": "device-0001", "events": []},
        {"anonymousId": "device-0001", "events": [{**event, "kind": "Launch!"}]},
        {"anonymousId": "device-0001", "events": [{**event, "at": 1_000}]},
        {"anonymousId": "device-0001", "events": [{**event, "scene": "scan"}]},
        {"anonymousId": "short", "events": [event]},
        {"events": [event]},  # no session, no anonymousId
    ]
    for body in events:
        response = served.api.post(f"/api/v1/{APPID}/events", json=body)
        assert response.status_code == 422, body
    assert served.api.post(f"/api/v1/{APPID}/session", json={}).status_code == 422
    assert served.api.post(f"/api/v1/{APPID}/session", json={"authCode": "x" * 257}).status_code == 422
    assert served.rows(CLAIMS) == [] and served.rows(EVENTS) == [] and served.taken() == 0
    assert served.vouchers() == []


def test_a_database_that_is_down_is_503_and_nothing_is_half_written(serve: Callable[..., Served]) -> None:
    served = serve(busy_timeout=0.2)
    token = served.login("7")
    database = served.database
    if database.kind == "sqlite":
        # Another process holds the database (an exclusive lock) longer than the busy timeout.
        blocker = sqlite3.connect(database.url.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        release = blocker.close
    else:
        assert database.cluster is not None
        database.cluster.set_reachable(database.url, False)
        release = lambda: database.cluster.set_reachable(database.url, True)  # noqa: E731
    try:
        down = served.claim(token)
        assert down.status_code == 503 and down.json()["error"]["code"] == "database_unavailable", down.text
        assert down.headers["retry-after"] == "1"
        events = served.api.post(f"/api/v1/{APPID}/events", headers={"Authorization": f"Bearer {token}"},
                                 json={"events": [{"kind": "launch", "at": 1_760_000_000_000}]})
        assert events.status_code == 503, events.text
        login = served.api.post(f"/api/v1/{APPID}/session", json={"authCode": "sandbox-user-8"})
        assert login.status_code == 503, login.text
    finally:
        release()
    assert served.rows(CLAIMS) == [] and served.rows(EVENTS) == [] and served.taken() == 0
    assert len(served.rows(USERS)) == 1
    back = served.claim(token)  # the same key, now that the database is back
    assert back.status_code == 201, back.text


# --- events, content, the document -------------------------------------------------------------

def test_events_are_stored_with_the_user_or_the_device(serve: Callable[..., Served]) -> None:
    served = serve()
    token = served.login("7")
    full = {"kind": "page_view", "at": 1_760_000_000_123, "scene": "1011", "channel": "poster-spring",
            "entryPoint": "table-xtd-12", "store": "xintiandi", "table": "12", "chInfo": "ch_qr", "page": "menu"}
    response = served.api.post(f"/api/v1/{APPID}/events", headers={"Authorization": f"Bearer {token}"},
                               json={"events": [full, {"kind": "launch", "at": 1_760_000_000_000}]})
    assert (response.status_code, response.json()) == (202, {"accepted": 2})
    anonymous = served.api.post(f"/api/v1/{APPID}/events",
                                json={"anonymousId": "device-0001", "events": [{"kind": "share", "at": 1_760_000_000_500}]})
    assert anonymous.status_code == 202
    rows = served.rows(EVENTS)
    assert [(r["kind"], r["user_kind"], r["alipay_user"], r["anonymous_id"]) for r in rows] == [
        ("page_view", "user_id", sandbox_user_id("7"), None), ("launch", "user_id", sandbox_user_id("7"), None),
        ("share", None, None, "device-0001")]
    assert {k: rows[0][k] for k in ("scene", "channel", "entry_point", "store", "table_no", "ch_info", "page")} == {
        "scene": "1011", "channel": "poster-spring", "entry_point": "table-xtd-12", "store": "xintiandi",
        "table_no": "12", "ch_info": "ch_qr", "page": "menu"}
    assert rows[0]["at"] == datetime(2025, 10, 9, 8, 53, 20, 123000, tzinfo=timezone.utc)
    assert rows[0]["received_at"] == NOON


def test_events_are_rate_limited_per_user_and_per_address(serve: Callable[..., Served]) -> None:
    served = serve(limits=Limits(events_burst=3, events_per_second=0.01))
    token = served.login("7")
    anonymous = {"anonymousId": "device-0001", "events": [{"kind": "launch", "at": 1_760_000_000_000}]}
    statuses = [served.api.post(f"/api/v1/{APPID}/events", json=anonymous).status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    limited = served.api.post(f"/api/v1/{APPID}/events", json=anonymous)
    assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
    # The user's bucket is their own, whatever address they come from.
    with_token = served.api.post(f"/api/v1/{APPID}/events", headers={"Authorization": f"Bearer {token}"},
                                 json={"events": anonymous["events"]})
    assert with_token.status_code == 202
    assert len(served.rows(EVENTS)) == 4


def test_token_buckets_refill_and_forget_the_least_recent_caller() -> None:
    now = [0.0]
    buckets = TokenBuckets(2, 0.5, max_callers=2, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 2.0]
    now[0] = 2.0  # one token back
    assert buckets.take("a") == 0.0 and buckets.take("a") == 2.0
    buckets.take("b")
    buckets.take("c")  # a is forgotten, and would come back with a full bucket
    assert buckets.take("a") == 0.0 and buckets.take("a") == 0.0


def test_content_has_the_coupons_and_an_etag(serve: Callable[..., Served]) -> None:
    served = serve((coupon("welcome", terms="每人一张"),
                    coupon("spring", validity={"start": "2026-02-01", "end": "2026-03-02"}, stock=9)))
    response = served.api.get(f"/api/v1/{APPID}/content")
    assert response.status_code == 200
    content = response.json()
    assert (content["appid"], content["today"]) == (APPID, "2026-03-02")
    welcome, spring = content["coupons"]
    assert (welcome["id"], welcome["valueText"], welcome["thresholdText"], welcome["terms"]) == (
        "welcome", "¥5", "无门槛", "每人一张")
    assert (spring["state"], spring["end"], spring["claimRoute"]) == ("available", "2026-03-02", "send")
    etag = response.headers["etag"]
    assert response.headers["cache-control"] == "public, max-age=60"
    unchanged = served.api.get(f"/api/v1/{APPID}/content", headers={"If-None-Match": etag})
    assert (unchanged.status_code, unchanged.content, unchanged.headers["etag"]) == (304, b"", etag)
    served.clock.now = NOON + timedelta(days=1)  # the spring coupon has ended
    later = served.api.get(f"/api/v1/{APPID}/content", headers={"If-None-Match": etag})
    assert later.status_code == 200 and later.headers["etag"] != etag
    assert later.json()["coupons"][1]["state"] == "expired"


def _schema(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    """The response schema of an operation, with the document's components to resolve it."""
    content = document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]
    return {**content["schema"], "components": document["components"]}


def test_the_openapi_document_lists_every_route_and_describes_what_is_sent(
        serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"MPFORGE_PUBLISH_TOKEN_{APPID}", PUBLISH_TOKEN)
    served = serve()
    response = served.api.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    # The API is what is under /api/; the plugins' web pages (mpforge_serve_pages: the
    # order board's HTML and the JSON it polls) are the merchant's, documented with them.
    served_routes = {(route.path, method.lower()) for route in served.app.routes if isinstance(route, Route)
                     and route.path.startswith("/api/") for method in route.methods or () if method != "HEAD"}
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert served_routes == documented
    assert len(served_routes) == 21
    claim = document["paths"]["/api/v1/{appid}/coupons/{coupon_id}/claims"]["post"]
    assert claim["security"] == [{"session": []}]
    assert {p["name"] for p in claim["parameters"]} == {"appid", "coupon_id", "Idempotency-Key"}
    [key_schema] = [p["schema"] for p in claim["parameters"] if p["name"] == "Idempotency-Key"]
    jsonschema.validate("2b9e7c1e-8d4f-4a7e-9a51-3f0c2d6e8b10", key_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("has space", key_schema)
    names = [op["operationId"] for operations in document["paths"].values() for op in operations.values()]
    assert sorted(names) == ["addStamp", "alipayNotify", "claimCoupon", "claimReward", "createOrder",
                             "createSession", "deleteMyData", "followPoints", "getContent", "getMembership",
                             "getMyData", "getOpenApi", "getOrder", "listContentVersions", "listMyClaims",
                             "listMyOrders", "openMemberCard", "publishContent", "recordEvents", "recordSubscriptions",
                             "restoreContent"]
    versions = document["paths"]["/api/v1/{appid}/content/versions"]
    assert versions["post"]["security"] == versions["get"]["security"] == [{"publish": []}]
    assert set(document["components"]["securitySchemes"]) == {"session", "publish"}
    # What the routes answer validates against what the document says they answer.
    token = served.login("7")
    claimed = served.claim(token)
    publisher = {"Authorization": f"Bearer {PUBLISH_TOKEN}"}
    replies = [
        ("/api/v1/{appid}/session", "post", 200, served.api.post(f"/api/v1/{APPID}/session",
                                                                 json={"authCode": "sandbox-user-7"})),
        ("/api/v1/{appid}/coupons/{coupon_id}/claims", "post", 201, claimed),
        ("/api/v1/{appid}/coupons/{coupon_id}/claims", "post", 409, served.claim(token, key="k2")),
        ("/api/v1/{appid}/coupons/{coupon_id}/claims", "post", 401, served.claim("forged")),
        ("/api/v1/{appid}/coupons/{coupon_id}/claims", "post", 422, served.claim(token, body={"x": 1})),
        ("/api/v1/{appid}/events", "post", 202, served.api.post(
            f"/api/v1/{APPID}/events", json={"anonymousId": "device-0001",
                                             "events": [{"kind": "launch", "at": 1_760_000_000_000}]})),
        ("/api/v1/{appid}/content", "get", 200, served.api.get(f"/api/v1/{APPID}/content")),
        ("/api/v1/{appid}/me/claims", "get", 200, served.api.get(f"/api/v1/{APPID}/me/claims",
                                                                 headers={"Authorization": f"Bearer {token}"})),
        ("/api/v1/{appid}/me/data", "get", 200, served.api.get(f"/api/v1/{APPID}/me/data",
                                                               headers={"Authorization": f"Bearer {token}"})),
        ("/api/v1/{appid}/content/versions", "post", 201, served.api.post(
            f"/api/v1/{APPID}/content/versions", headers=publisher, json={"name": "Shop", "coupons": []})),
        ("/api/v1/{appid}/content/versions/{version}/restore", "post", 201, served.api.post(
            f"/api/v1/{APPID}/content/versions/0/restore", headers=publisher)),
        ("/api/v1/{appid}/content/versions", "get", 200, served.api.get(f"/api/v1/{APPID}/content/versions",
                                                                        headers=publisher)),
        ("/api/v1/{appid}/content/versions", "get", 401, served.api.get(f"/api/v1/{APPID}/content/versions")),
    ]
    for path, method, status, reply in replies:
        assert reply.status_code == status, (path, reply.text)
        jsonschema.validate(reply.json(), _schema(document, path, method, status))
    session_body = document["paths"]["/api/v1/{appid}/session"]["post"]["requestBody"]["content"]
    jsonschema.validate({"authCode": "x"}, {**session_body["application/json"]["schema"],
                                            "components": document["components"]})


def test_no_cors_headers_are_sent(serve: Callable[..., Served]) -> None:
    served = serve()
    origin = {"Origin": "https://shop.example.com"}
    preflight = served.api.request("OPTIONS", f"/api/v1/{APPID}/session",
                                   headers={**origin, "Access-Control-Request-Method": "POST"})
    content = served.api.get(f"/api/v1/{APPID}/content", headers=origin)
    for response in (preflight, content):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    assert preflight.status_code == 405


def test_no_secret_in_a_response_or_a_log_record(serve: Callable[..., Served],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    served = serve(timeout=0.3)
    responses = [served.api.post(f"/api/v1/{APPID}/session", json={"authCode": "sandbox-user-7"})]
    token = responses[0].json()["token"]
    responses.append(served.claim(token))
    served.sandbox.state.faults = Faults(delay_seconds=1.0)
    responses.append(served.claim(token, key="k2"))  # pending: warnings logged
    served.sandbox.state.faults = Faults()
    responses.append(served.api.post(f"/api/v1/{APPID}/session", json={"authCode": "not-a-code"}))
    responses.append(served.claim(token + "x"))
    keys = [source.file.read_text() for keys in served.sandbox.alipay.apps.values()
            for source in (keys.app_private_key,) if source.file is not None]
    key_lines = [line for pem in keys for line in pem.splitlines() if line and not line.startswith("-----")]
    secrets = [token, "sandbox-user-7", "not-a-code", SECRET.decode(), *key_lines]
    texts = [r.text for r in responses[1:]] + [record.getMessage() for record in caplog.records]
    texts.append(repr(served.app.state.api.tokens))
    assert [s for s in secrets if any(s in text for text in texts)] == []
    assert any(r.name == "builder.serve.claims" for r in caplog.records)  # claims are logged


# --- start-up ------------------------------------------------------------------------------------

def test_the_schema_is_the_tables_and_migrating_again_changes_nothing(database: Database) -> None:
    storage = Storage(database.url)
    try:
        storage.migrate()
        storage.migrate()
        with storage.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), METADATA) == []
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0003"
            if database.kind == "sqlite":
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        storage.dispose()


def test_a_database_of_the_first_revision_is_upgraded_and_keeps_its_rows(database: Database) -> None:
    storage = Storage(database.url)
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with storage.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            conn.execute(USERS.insert().values(appid=APPID, user_kind="user_id", alipay_user="2088000000000007",
                                               created_at=NOON))
        storage.migrate()
        with storage.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0003"
            assert [row.alipay_user for row in conn.execute(select(USERS))] == ["2088000000000007"]
        assert storage.content_versions(APPID) == []
        assert storage.add_content_version(APPID, "{}").version == 1
    finally:
        storage.dispose()


def test_start_up_refuses_what_it_cannot_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    merchant = load_merchant(write_spec(tmp_path / "shop", [coupon("welcome")]))
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    with pytest.raises(UserError, match="more than one spec"):
        create_app([merchant, merchant], url, alipay=AlipayConfig(), secret=SECRET)
    with pytest.raises(UserError, match=f"app {APPID}: no Alipay keys"):
        create_app([merchant], url, alipay=AlipayConfig(), secret=SECRET)
    monkeypatch.delenv(f"MPFORGE_ALIPAY_APP_PRIVATE_KEY_{APPID}", raising=False)
    monkeypatch.delenv(f"MPFORGE_ALIPAY_PUBLIC_KEY_{APPID}", raising=False)
    with pytest.raises(UserError, match=f"environment variable MPFORGE_ALIPAY_[A-Z_]+_{APPID} is not set"):
        create_app([merchant], url, alipay=AlipayConfig.from_environment([APPID]), secret=SECRET)
    with pytest.raises(ValueError, match="32 bytes"):
        SessionTokens(b"short", timedelta(hours=1), Clock())
    with pytest.raises(ValueError, match="sqlite:/// or postgresql://"):
        Storage("mysql://localhost/db")
    with pytest.raises(ValueError, match="in-memory"):
        Storage("sqlite://")
    spec = write_spec(tmp_path / "no-appid", [coupon("welcome")])
    spec.write_text(spec.read_text("utf-8").replace(f"appid: '{APPID}'", "description: no app id"), "utf-8")
    with pytest.raises(UserError, match="needs the app's Alipay app id"):
        load_merchant(spec)


# --- concurrency ------------------------------------------------------------------------------------

def test_concurrent_claims_never_oversell_nor_issue_twice(serve: Callable[..., Served]) -> None:
    """200 users claim a coupon with 20 in stock at the same moment: 20 vouchers, to 20
    different users, and every other claim SOLD_OUT."""
    served = serve((coupon("welcome", stock=20, per_user_limit=1),))
    logins = served.api.gather([("POST", f"/api/v1/{APPID}/session", {"json": {"authCode": f"sandbox-user-{n}"}})
                                for n in range(200)])
    tokens = [r.json()["token"] for r in logins]
    claims = served.api.gather([("POST", f"/api/v1/{APPID}/coupons/welcome/claims", claim_request(t, "tap"))
                                for t in tokens])
    results = [r.json()["result"] for r in claims]
    assert results.count("CLAIMED") == 20 and results.count("SOLD_OUT") == 180, results
    vouchers = served.vouchers()
    assert len(vouchers) == 20 and len({v.user_id for v in vouchers}) == 20
    assert sorted(v.voucher_code for v in vouchers) == sorted(r.json()["voucherCode"] for r in claims
                                                              if r.status_code == 201)
    assert served.taken() == 20
    assert sorted(c["status"] for c in served.rows(CLAIMS)) == ["failed"] * 180 + ["issued"] * 20


def test_one_user_at_once_gets_the_limit_and_one_key_gets_one_voucher(serve: Callable[..., Served]) -> None:
    served = serve((coupon("welcome", stock=50, per_user_limit=2),))
    token = served.login("7")
    url = f"/api/v1/{APPID}/coupons/welcome/claims"
    many_keys = served.api.gather([("POST", url, claim_request(token, f"key-{n}")) for n in range(20)])
    assert sorted(r.json()["result"] for r in many_keys) == ["CLAIMED"] * 2 + ["LIMIT_REACHED"] * 18
    other = served.login("8")
    one_key = served.api.gather([("POST", url, claim_request(other, "same")) for _ in range(20)])
    assert {(r.status_code, r.text) for r in one_key} == {(one_key[0].status_code, one_key[0].text)}
    assert one_key[0].json()["result"] == "CLAIMED"
    assert len(served.vouchers()) == 3 and served.taken() == 3


# --- run_serve ----------------------------------------------------------------------------------------

def test_run_serve_with_the_sandbox_serves_claims_from_a_file_beside_the_spec(tmp_path: Path) -> None:
    """`mpforge serve DIR --sandbox --port N` in a process of its own."""
    spec = write_spec(tmp_path / "shop", [coupon("welcome", stock=1)])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    temp = tmp_path / "tmp"
    temp.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "builder", "serve", str(spec.parent), "--sandbox",
                                "--port", str(port)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "TMPDIR": str(temp)})
    base = f"http://127.0.0.1:{port}/api/v1/{APPID}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/content", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                if "needs root" in output:
                    unavailable("--sandbox listens on port 80, which needs root")
                pytest.fail(f"run_serve stopped: {output}")
            assert time.monotonic() < deadline, "run_serve did not start"
            time.sleep(0.1)
        token = httpx.post(f"{base}/session", json={"authCode": "sandbox-user-7"}).json()["token"]
        claims = [httpx.post(f"{base}/coupons/welcome/claims", **claim_request(token, key))
                  for key in ("a", "a", "b")]
        assert [c.status_code for c in claims] == [201, 201, 409]
        assert claims[0].json() == claims[1].json()
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    # uvicorn shuts down, then ends the process with the SIGTERM it was sent.
    assert process.returncode == -signal.SIGTERM, output
    assert "Traceback" not in output and "sandbox gateway at http://127.0.0." in output
    assert (spec.parent / "mpforge-serve.sqlite3").is_file()
    assert list(temp.iterdir()) == []  # the sandbox's key files are gone
