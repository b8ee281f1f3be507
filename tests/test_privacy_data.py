"""A user's own data (GET and DELETE /api/v1/{appid}/me/data, builder/serve/user_data.py),
on SQLite and PostgreSQL: a user with a claim, events, a paid order, an unpaid one and
membership rows sees all of it and nothing of another user's; deleting leaves nothing of
theirs, the other user untouched, the paid order kept without its user, the claim kept
under a pseudonym that still counts against the coupon's once-per-customer limit, and
is safe to repeat. Then the privacy policy page's 查看我的数据 / 删除我的数据 buttons, the
built JavaScript run in Node against a live back end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import write_project
from serve_support import APPID, NOON, coupon
from sqlalchemy import insert, select
from test_ordering import Shop, open_shop, shop_spec

from builder.api import build
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
        conn.execute(insert(membership.STAMPS).values(**who, nonce=f"n-{user.id}", store="main", filled=False,
                                                     created_at=NOON))
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
    # Membership: nothing of ann's but her crowd entry, which the segment's next push removes
    # at Alipay and here (tests/test_customer_view.py); bob's rows untouched.
    assert membership_rows(shop, ann) == 2  # the two crowd entries
    assert membership_rows(shop, bob) == 7  # 5 of his own and both crowd entries

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


# --- the privacy policy page's buttons, in Node against the live back end --------------------

HARNESS = r"""
// Loads the built privacy page with a `my` whose requests reach the live back end and
// whose confirm dialog answers as STEPS say; runs STEPS, snapshotting the block's data.
const path = require('path');
const [out, live, stepsJson, storageJson] = process.argv.slice(1);
const steps = JSON.parse(stepsJson);
const storage = JSON.parse(storageJson);
const log = { snapshots: {}, confirms: [], requests: [] };
let confirm = false;
let pending = 0;
const later = (fn) => { pending += 1; setTimeout(() => { try { fn(); } finally { pending -= 1; } }, 0); };
global.getApp = () => ({ globalData: {} });
global.my = {
  getStorageSync: ({ key }) => ({ data: storage[key] === undefined ? null : JSON.parse(storage[key]) }),
  setStorageSync: ({ key, data }) => { storage[key] = JSON.stringify(data); },
  removeStorageSync: ({ key }) => { delete storage[key]; },
  getAuthCode: (o) => later(() => o.success({ authCode: 'sandbox-user-ann' })),
  confirm: (o) => { log.confirms.push({ title: o.title, content: o.content }); later(() => o.success({ confirm })); },
  request: (o) => {
    pending += 1;
    const url = o.url.replace(BASE_URL_JSON, live);
    log.requests.push(o.method + ' ' + new URL(url).pathname);
    const body = o.method === 'GET' || o.method === undefined ? undefined : JSON.stringify(o.data || {});
    fetch(url, { method: o.method || 'GET', headers: o.headers, body }).then(async (res) => {
      const text = await res.text();
      // As my.request: dataType json parses the body, text hands it over as it is.
      const data = o.dataType === 'text' ? text : JSON.parse(text);
      const answer = { status: res.status, data, headers: Object.fromEntries(res.headers.entries()) };
      if (res.status >= 200 && res.status < 300) o.success(answer);
      else o.fail(Object.assign({ error: 19 }, answer));
    }, () => o.fail({ error: 12 })).finally(() => { pending -= 1; });
  },
};
let definition = null;
global.Page = (o) => { definition = o; };
require(path.join(out, 'pages/privacy/privacy.js'));
const page = Object.assign({}, definition, { data: JSON.parse(JSON.stringify(definition.data)) });
page.setData = function (update) {
  for (const [k, v] of Object.entries(update)) {
    const parts = k.split('.');
    let target = this.data;
    parts.slice(0, -1).forEach((p) => { target = target[p]; });
    target[parts[parts.length - 1]] = v;
  }
};
page.onLoad({});
const idle = () => new Promise((resolve) => { const tick = () => (pending ? setTimeout(tick, 5) : resolve()); setTimeout(tick, 5); });
(async () => {
  for (const step of steps) {
    if (step.confirm !== undefined) confirm = step.confirm;
    page[step.tap]({ currentTarget: { dataset: { key: 'b0' } } });
    await idle();
    log.snapshots[step.as] = JSON.parse(JSON.stringify(page.data.b0));
  }
  log.storage = storage;
  process.stdout.write(JSON.stringify(log));
  process.exit(0);
})();
""".replace("BASE_URL_JSON", json.dumps("https://api.example.com"))


def test_the_privacy_page_shows_and_deletes_the_users_data(shop: Shop, tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.fail("node is required for this test (.ci/run installs it)")
    out = tmp_path / "out"
    build(write_project(tmp_path / "built", privacy_spec()), out)
    axml = (out / "pages/privacy/privacy.axml").read_text(encoding="utf-8")
    assert 'onTap="mfShowMyData">查看我的数据' in axml and 'onTap="mfDeleteMyData">删除我的数据' in axml
    _, paid, _ = a_customer(shop, "ann")
    steps = [{"tap": "mfShowMyData", "as": "shown"},
             {"tap": "mfDeleteMyData", "confirm": False, "as": "kept"},
             {"tap": "mfDeleteMyData", "confirm": True, "as": "deleted"},
             {"tap": "mfShowMyData", "as": "after"}]
    device = {"mpforge.device": json.dumps("d-device-0001"), "mpforge.events": json.dumps([])}
    result = subprocess.run(["node", "-e", HARNESS, str(out), shop.live.url, json.dumps(steps), json.dumps(device)],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "TZ": "Asia/Shanghai"})
    assert result.returncode == 0, result.stderr
    log = json.loads(result.stdout)
    shown = log["snapshots"]["shown"]
    assert shown["status"] == "以下是我们保存的您的全部数据"
    summary = {item["label"]: item["text"] for item in shown["mine"]}
    assert summary["领券记录"] == "1 条" and summary["访问记录"] == "2 条" and summary["订单"] == "2 条"
    assert summary["会员"].startswith("会员资料 无，积分记录 0 条")
    assert paid in shown["raw"]  # the whole answer is shown too
    # Cancelled: nothing was asked of the back end, nothing deleted.
    assert log["confirms"][0]["title"] == "删除我的数据" and "无法恢复" in log["confirms"][0]["content"]
    assert log["snapshots"]["kept"] == shown
    assert log["snapshots"]["deleted"]["status"] == "已删除您的数据"
    after = {item["label"]: item["text"] for item in log["snapshots"]["after"]["mine"]}
    assert after["领券记录"] == after["访问记录"] == after["订单"] == "0 条"
    assert log["requests"].count(f"DELETE /api/v1/{APPID}/me/data") == 1
    # The device forgot its id and unsent events; the session it holds is the one made after.
    assert "mpforge.device" not in log["storage"] and "mpforge.events" not in log["storage"]
    assert "mpforge.session" in log["storage"]
    assert shop.stored(paid).user.kind == orders.FORGOTTEN_KIND
