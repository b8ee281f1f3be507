"""Subscription messages (plugins/membership/messages.py, sandbox_messages.py): what a
customer allowed (POST membership/subscriptions), "your order is ready" sent once however
often the event is announced and only to a customer who allowed it, the per-day limit,
and "your coupon expires tomorrow" from the periodic task, each through the sandbox's
alipay.open.app.mini.templatemessage.send, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import write_project
from serve_support import APPID, NOON, Database
from test_membership_stamps import STAMPS_URL, fresh_code, membership_spec
from test_ordering import Shop, open_shop

from builder.serve.business_events import ORDER_PAID, ORDER_READY, BusinessEvent
from builder.serve.merchant import load_merchant
from builder.serve.sandbox_state import sandbox_user_id
from builder.serve.storage import CLAIMS, AlipayUser
from plugins.membership import messages
from plugins.membership.sandbox_messages import MessageCentre, SentMessage, message_centre
from plugins.membership.tables import MESSAGES, SUBSCRIPTIONS

pytest_plugins = ["serve_fixtures"]  # database, postgres

SUBSCRIPTIONS_URL = f"/api/v1/{APPID}/membership/subscriptions"


@pytest.fixture
def shop(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    merchant = load_merchant(write_project(tmp_path / "shop", membership_spec()))
    with open_shop(database, merchant, monkeypatch) as opened:
        centre(opened).add_template(APPID, "TPL_READY", 3)
        centre(opened).add_template(APPID, "TPL_EXPIRING", 2)
        centre(opened).add_template(APPID, "TPL_POINTS", 3)
        yield opened


def centre(shop: Shop) -> MessageCentre:
    return message_centre(shop.served.sandbox.state)


def subscribe(shop: Shop, name: str, *accepted: str, rejected: tuple[str, ...] = ()) -> httpx.Response:
    """The customer accepts in my.requestSubscribeMessage: Alipay records it (the
    sandbox), and the mini-program tells the back end."""
    for template_id in accepted:
        centre(shop).subscribe(APPID, sandbox_user_id(name), template_id)
    token = shop.served.login(name)
    return shop.api.post(SUBSCRIPTIONS_URL, json={"accepted": list(accepted), "rejected": list(rejected)},
                         headers={"Authorization": f"Bearer {token}"})


def user(name: str) -> AlipayUser:
    return AlipayUser("user_id", sandbox_user_id(name))


def ready(shop: Shop, name: str, order_no: str, **data: str) -> None:
    """The order board marked the order ready: announced as the ordering plugin does."""
    shop.served.app.state.api.announce(BusinessEvent(
        APPID, user(name), ORDER_READY, order_no, shop.served.clock(),
        data=tuple(sorted({"store": "main", "store_name": "Main", **data}.items()))))


def rows(shop: Shop, table: Any) -> list[dict[str, Any]]:
    return shop.served.rows(table)


def test_subscriptions_accumulate_and_unknown_templates_are_422(shop: Shop) -> None:
    assert subscribe(shop, "ann", "TPL_READY").status_code == 204
    assert subscribe(shop, "ann", "TPL_READY", rejected=("TPL_EXPIRING",)).status_code == 204
    # One answer names a template once: the same id twice in one request counts once.
    token = shop.served.login("ann")
    assert shop.api.post(SUBSCRIPTIONS_URL, json={"accepted": ["TPL_EXPIRING", "TPL_EXPIRING"]},
                         headers={"Authorization": f"Bearer {token}"}).status_code == 204
    assert [(r["alipay_user"], r["template_id"], r["allowed"]) for r in rows(shop, SUBSCRIPTIONS)] == [
        (sandbox_user_id("ann"), "TPL_READY", 2), (sandbox_user_id("ann"), "TPL_EXPIRING", 1)]
    unknown = subscribe(shop, "ann", rejected=("TPL_NOPE",))
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "unknown_template")
    assert unknown.json()["error"]["fields"] == [{"location": "rejected.0",
                                                  "message": "'TPL_NOPE' is not a template of this mini-program"}]
    no_session = shop.api.post(SUBSCRIPTIONS_URL, json={"accepted": ["TPL_READY"]})
    assert no_session.status_code == 401
    assert rows(shop, SUBSCRIPTIONS)[0]["allowed"] == 2


def test_an_order_ready_sends_one_message_however_often_it_is_announced(shop: Shop) -> None:
    for _ in range(2):  # asked twice, accepted twice: two sends allowed
        assert subscribe(shop, "ann", "TPL_READY").status_code == 204
    ready(shop, "ann", "HC0001")
    ready(shop, "ann", "HC0001")  # announced again (a second device, a retry)
    with ThreadPoolExecutor(3) as pool:  # and at once
        list(pool.map(lambda _: ready(shop, "ann", "HC0001"), range(3)))
    assert centre(shop).sent == [SentMessage(APPID, sandbox_user_id("ann"), "TPL_READY", "pages/home/home",
                                             ("HC0001", "Main", "已出餐，请取餐"))]
    assert [(r["template_id"], r["event"], r["ref"], r["status"]) for r in rows(shop, MESSAGES)] == [
        ("TPL_READY", "order_ready", "HC0001", "sent")]
    assert rows(shop, SUBSCRIPTIONS)[0]["allowed"] == 1  # one of the two used
    shop.served.app.state.api.announce(BusinessEvent(APPID, user("ann"), ORDER_PAID, "HC0002", NOON))
    assert len(centre(shop).sent) == 1  # other events send nothing


def test_a_customer_who_did_not_subscribe_gets_nothing(shop: Shop) -> None:
    ready(shop, "bob", "HC0001")
    # Subscribed on Alipay's side only (the back end was never told): still nothing.
    centre(shop).subscribe(APPID, sandbox_user_id("cy"), "TPL_READY")
    ready(shop, "cy", "HC0002")
    assert centre(shop).sent == [] and rows(shop, MESSAGES) == []
    # One acceptance allows one message: the second order's is not sent.
    assert subscribe(shop, "dee", "TPL_READY").status_code == 204
    ready(shop, "dee", "HC0003")
    ready(shop, "dee", "HC0004")
    assert [m.values[0] for m in centre(shop).sent] == ["HC0003"]


def test_alipays_refusal_is_recorded_and_not_retried(shop: Shop) -> None:
    # The back end was told, but Alipay has no acceptance (the sandbox refuses).
    token = shop.served.login("ann")
    assert shop.api.post(SUBSCRIPTIONS_URL, json={"accepted": ["TPL_READY"]},
                         headers={"Authorization": f"Bearer {token}"}).status_code == 204
    ready(shop, "ann", "HC0001")
    ready(shop, "ann", "HC0001")
    assert centre(shop).sent == []
    assert [(r["status"], r["alipay_sub_code"]) for r in rows(shop, MESSAGES)] == [("refused",
                                                                                   "USER_NOT_SUBSCRIBED")]


def test_at_most_per_user_per_day_messages_a_china_day(shop: Shop) -> None:
    for _ in range(4):
        assert subscribe(shop, "ann", "TPL_READY").status_code == 204
    for order_no in ("HC0001", "HC0002", "HC0003"):
        ready(shop, "ann", order_no)
    assert [m.values[0] for m in centre(shop).sent] == ["HC0001", "HC0002"]  # per_user_per_day: 2
    shop.served.clock.now = NOON + timedelta(hours=12)  # midnight in China: a new day
    ready(shop, "ann", "HC0004")
    assert [m.values[0] for m in centre(shop).sent] == ["HC0001", "HC0002", "HC0004"]
    assert rows(shop, SUBSCRIPTIONS)[0]["allowed"] == 1


def test_a_voucher_expiring_tomorrow_gets_one_message(shop: Shop) -> None:
    # welcome: valid 7 days after the claim; claimed on 2026-03-02 (China), its last day is 2026-03-09.
    claimed = shop.served.claim(shop.served.login("ann"))
    assert claimed.status_code == 201, claimed.text
    for _ in range(2):
        assert subscribe(shop, "ann", "TPL_EXPIRING").status_code == 204
    context = shop.served.app.state.api.context
    shop.served.clock.now = NOON + timedelta(days=5)  # 2026-03-07: the day after tomorrow
    messages.send_coupon_expiring(context)
    assert centre(shop).sent == []
    shop.served.clock.now = NOON + timedelta(days=6)  # 2026-03-08
    messages.send_coupon_expiring(context)
    messages.send_coupon_expiring(context)  # the task runs again (every hour)
    assert centre(shop).sent == [SentMessage(APPID, sandbox_user_id("ann"), "TPL_EXPIRING", "",
                                             ("welcome 5 元", "2026-03-09"))]
    claim = rows(shop, CLAIMS)[0]
    assert [(r["event"], r["ref"], r["status"]) for r in rows(shop, MESSAGES)] == [
        ("coupon_expiring", claim["out_biz_no"], "sent")]
    assert messages.TASKS[0].name == "membership.coupon_expiring"


def test_a_stamps_points_send_the_points_message(shop: Shop) -> None:
    assert subscribe(shop, "ann", "TPL_POINTS").status_code == 204
    token = shop.served.login("ann")
    stamped = shop.api.post(STAMPS_URL, json={"code": fresh_code()}, headers={"Authorization": f"Bearer {token}"})
    assert stamped.status_code == 200, stamped.text
    assert centre(shop).sent == [SentMessage(APPID, sandbox_user_id("ann"), "TPL_POINTS", "",
                                             ("+2", "2", "积分已到账"))]
    assert [(r["event"], r["ref"][:6], r["status"]) for r in rows(shop, MESSAGES)] == [
        ("points_changed", "stamp:", "sent")]
