"""A user's own data (GET and DELETE /api/v1/{appid}/me/data, builder/serve/user_data.py),
on SQLite and PostgreSQL: a user with a claim, events, a paid order, an unpaid one and
membership rows sees all of it and nothing of another user's; deleting leaves nothing of
theirs, the other user untouched, the paid order kept without its user, the claim kept
under a pseudonym that still counts against the coupon's once-per-customer limit, and
is safe to repeat. Then the privacy policy page's 查看我的数据 / 删除我的数据 buttons, the
built JavaScript run in Node against a live back end.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import write_project
from serve_support import APPID, NOON, SECRET, LiveServer, coupon, unavailable
from sqlalchemy import insert, select
from test_ordering import Shop, open_shop, shop_spec

from builder.api import build
from builder.serve.app import create_app
from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import load_merchant
from builder.serve.storage import CLAIMS, EVENTS, FORGOTTEN_PREFIX, USERS, AlipayUser
from plugins.membership import tables as membership
from plugins.ordering import orders
from plugins.ordering.serve import reconcile

pytest_plugins = ["serve_fixtures"]  # database, postgres

DATA = f"/api/v1/{APPID}/me/data"


def privacy_spec() -> dict[str, Any]:
    """The ordering shop with a once-per-customer coupon, and the core's privacy page."""
    spec = shop_spec()
    spec["pages"] = [page for page in spec["pages"] if page["id"] != "privacy"]
    spec["coupon"] = {"coupons": [coupon("welcome")]}
    return spec


@pytest.fixture
def shop(database: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    merchant = load_merchant(write_project(tmp_path / "shop", privacy_spec()))
    with open_shop(database, merchant, monkeypatch) as opened:
        yield opened


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_of(shop: Shop, token: str) -> AlipayUser:
    user = shop.served.app.state.api.tokens.user(APPID, token)
    assert user is not None
    return user


def add_membership_rows(shop: Shop, user: AlipayUser, mobile: str) -> None:
    """What the membership plugin stores of a member, written directly (its endpoints
    are another part's): a customer with a card and a mobile hash, a points entry, a
    stamp, a subscription, a message, and an entry of a pushed crowd."""
    who = {"appid": APPID, "user_kind": user.kind, "alipay_user": user.id}
    with shop.served.storage.engine.begin() as conn:
        conn.execute(insert(membership.CUSTOMERS).values(
            **who, points=120, earned=300, stamps=3, cards_filled=1, biz_card_no=f"card-{user.id}",
            card_opened_at=NOON, mobile_sha256=mobile, created_at=NOON, updated_at=NOON))
        conn.execute(insert(membership.LEDGER).values(**who, reason="order", ref=f"o-{user.id}", delta=120,
                                                      balance=120, created_at=NOON))
        conn.execute(insert(membership.STAMPS).values(**who, nonce=f"n-{user.id}", store="main", created_at=NOON))
        conn.execute(insert(membership.SUBSCRIPTIONS).values(**who, template_id="ready", allowed=1,
                                                             updated_at=NOON))
        conn.execute(insert(membership.MESSAGES).values(**who, template_id="ready", event="order_ready",
                                                        ref=f"o-{user.id}", status="sent", created_at=NOON))
        conn.execute(insert(membership.CROWD_USERS).values(appid=APPID, segment="regulars", id_type="SHA256_MOBILE",
                                                           user_value=mobile))


def membership_rows(shop: Shop, user: AlipayUser) -> int:
    with shop.served.storage.engine.connect() as conn:
        found = sum(len(conn.execute(select(table).where(
            table.c.appid == APPID, table.c.user_kind == user.kind, table.c.alipay_user == user.id)).all())
            for table in (membership.CUSTOMERS, membership.LEDGER, membership.STAMPS, membership.SUBSCRIPTIONS,
                          membership.MESSAGES))
        return found + len(conn.execute(select(membership.CROWD_USERS)).all())


def a_customer(shop: Shop, name: str) -> tuple[str, str, str]:
    """A logged-in customer with a claim, two events, a paid order and an unpaid one:
    (token, paid order number, unpaid order number)."""
    token = shop.served.login(name)
    assert shop.served.claim(token, key=f"claim-{name}").status_code == 201
    at = int(NOON.timestamp() * 1000)
    sent = shop.api.post(f"/api/v1/{APPID}/events", headers=bearer(token), json={"events": [
        {"kind": "launch", "at": at, "scene": "1011", "channel": "poster"},
        {"kind": "page_view", "at": at + 1000, "page": "pages/home/home"}]})
    assert sent.status_code == 202, sent.text
    paid = shop.order(token, key=f"paid-{name}").json()["id"]
    assert shop.pay(paid)["notifyStatus"] == 200
    unpaid = shop.order(token, key=f"unpaid-{name}").json()["id"]
    return token, paid, unpaid


def test_a_user_sees_all_their_data_and_deleting_it_keeps_only_what_the_merchant_must(shop: Shop) -> None:
    ann_token, ann_paid, ann_unpaid = a_customer(shop, "ann")
    bob_token, bob_paid, _ = a_customer(shop, "bob")
    ann, bob = user_of(shop, ann_token), user_of(shop, bob_token)
    add_membership_rows(shop, ann, "a" * 64)
    add_membership_rows(shop, bob, "b" * 64)

    shown = shop.api.get(DATA, headers=bearer(ann_token))
    assert shown.status_code == 200, shown.text
    assert shown.headers["cache-control"] == "no-store"
    data = shown.json()
    assert data["user"] == {"kind": ann.kind, "id": ann.id, "firstSeen": "2026-03-02T04:00:00Z"}
    assert [(c["couponId"], c["status"]) for c in data["claims"]] == [("welcome", "issued")]
    assert [(e["kind"], e["scene"], e["channel"], e["page"]) for e in data["events"]] == [
        ("launch", "1011", "poster", None), ("page_view", None, None, "pages/home/home")]
    assert {o["number"]: o["status"] for o in data["orders"]} == {ann_paid: "paid", ann_unpaid: "created"}
    paid = next(o for o in data["orders"] if o["number"] == ann_paid)
    assert paid["total"] == 6400 and paid["lines"][0]["name"] == "拿铁" and paid["paidAt"]
    member = data["membership"]
    assert member["customer"]["points"] == 120 and member["customer"]["cardNo"] == f"card-{ann.id}"
    assert member["customer"]["mobileHashStored"] is True and "a" * 64 not in shown.text  # never the hash
    assert [len(member[k]) for k in ("ledger", "stamps", "subscriptions", "messages")] == [1, 1, 1, 1]
    assert bob.id not in shown.text and bob_paid not in shown.text  # nothing of another user

    assert shop.api.request("DELETE", DATA, headers=bearer(ann_token)).status_code == 204
    served = shop.served
    # The core: no user row, no events; the claim kept under a pseudonym, not the user.
    assert [r["alipay_user"] for r in served.rows(USERS)] == [bob.id]
    assert {r["alipay_user"] for r in served.rows(EVENTS)} == {bob.id}
    kept = [r for r in served.rows(CLAIMS) if r["alipay_user"] != bob.id]
    assert len(kept) == 1 and kept[0]["alipay_user"].startswith(FORGOTTEN_PREFIX)
    assert ann.id not in kept[0]["alipay_user"] and kept[0]["idempotency_key"] == kept[0]["out_biz_no"]
    # Ordering: both orders kept, without the user; the paid one still paid.
    for number, status in ((ann_paid, orders.Status.PAID), (ann_unpaid, orders.Status.CREATED)):
        order = shop.stored(number)
        assert order.status == status
        assert order.user == AlipayUser(orders.FORGOTTEN_KIND, f"order:{order.id}")
    # Membership: nothing of ann's; bob's rows (and crowd entry) untouched.
    assert membership_rows(shop, ann) == 1  # bob's crowd entry is the one left
    assert membership_rows(shop, bob) == 6

    # The same token now reaches an empty account; a second DELETE is fine.
    empty = shop.api.get(DATA, headers=bearer(ann_token)).json()
    assert empty == {"user": {"kind": ann.kind, "id": ann.id, "firstSeen": None}, "claims": [], "events": [],
                     "orders": [], "membership": {"customer": None, "ledger": [], "stamps": [],
                                                  "subscriptions": [], "messages": []}}
    assert shop.api.request("DELETE", DATA, headers=bearer(ann_token)).status_code == 204
    # Bob sees all of his still.
    bobs = shop.api.get(DATA, headers=bearer(bob_token)).json()
    assert len(bobs["claims"]) == 1 and len(bobs["events"]) == 2 and len(bobs["orders"]) == 2
    assert bobs["membership"]["customer"]["points"] == 120

    # The coupon is once per customer: ann, back with a new session, is still refused.
    again = shop.served.claim(shop.served.login("ann"), key="claim-ann-again")
    assert again.status_code == 409 and again.json()["result"] == "LIMIT_REACHED", again.text


def test_the_unpaid_order_of_a_forgotten_user_is_still_closed_by_reconciliation(shop: Shop) -> None:
    token, _, unpaid = a_customer(shop, "ann")
    assert shop.api.request("DELETE", DATA, headers=bearer(token)).status_code == 204
    shop.served.clock.now = NOON + timedelta(hours=1)
    api = shop.served.app.state.api
    reconcile(api.storage, api.clients, {APPID: timedelta(minutes=15)})
    assert shop.stored(unpaid).status == orders.Status.CLOSED


def test_me_data_needs_a_session_and_is_documented(shop: Shop) -> None:
    for method in ("GET", "DELETE"):
        refused = shop.api.request(method, DATA)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    paths = shop.api.get("/api/v1/openapi.json").json()["paths"]["/api/v1/{appid}/me/data"]
    assert paths["get"]["operationId"] == "getMyData" and paths["get"]["security"] == [{"session": []}]
    assert paths["delete"]["operationId"] == "deleteMyData" and "204" in paths["delete"]["responses"]
