"""The merchant's order board (plugins/ordering/board*.py): the staff login and its
cookie, CSRF, a store's orders read from the database by cursor, accept / ready /
complete / refund through the sandbox, on SQLite and PostgreSQL; then the page itself in
Chromium, with screenshots in /tmp/order-board-screenshots."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import write_project
from serve_support import APPID, NOON, SECRET, ApiClient, Clock, Database
from test_ordering import Shop, open_shop, shop_spec

from builder.serve.app import create_app
from builder.serve.merchant import load_merchant
from builder.serve.sandbox_state import Faults
from plugins.ordering import orders
from plugins.ordering.sandbox import trades

pytest_plugins = ["serve_fixtures"]  # database, postgres

STAFF_TOKEN = "staff-token-for-the-tests-0123456789abc"  # at least 32 characters
ORIGIN = "http://serve.test"  # ApiClient's base URL: the Host the app sees
BOARD = f"/merchant/{APPID}"
SCREENSHOTS = Path("/tmp/order-board-screenshots")
# East takes orders on Mondays 14:00-18:00 China time; main every day 09:00-21:00.
MONDAY_3PM = NOON + timedelta(hours=3)


@dataclass
class Board:
    shop: Shop

    @property
    def api(self) -> ApiClient:
        return self.shop.api

    def login(self, token: str = STAFF_TOKEN, origin: str | None = ORIGIN) -> httpx.Response:
        headers = {"Origin": origin} if origin else {}
        answer = self.api.post(f"{BOARD}/login", json={"token": token}, headers=headers)
        self.api.client.cookies.clear()  # each test sends the cookie it means to
        return answer

    def cookie(self) -> dict[str, str]:
        answer = self.login()
        assert answer.status_code == 204, answer.text
        value = re.match(r"mpforge_staff=([^;]+);", answer.headers["set-cookie"])
        assert value is not None
        return {"Cookie": f"mpforge_staff={value.group(1)}"}

    def feed(self, cookie: dict[str, str], **params: str) -> httpx.Response:
        return self.api.get(f"{BOARD}/orders/feed", params=params, headers=cookie)

    def act(self, cookie: dict[str, str], order_id: str, action: str, origin: str | None = ORIGIN) -> httpx.Response:
        headers = {**cookie, **({"Origin": origin} if origin else {})}
        return self.api.post(f"{BOARD}/orders/{order_id}/{action}", headers=headers)

    def paid_order(self, user: str = "ann", key: str = "order-1", **body: Any) -> dict[str, Any]:
        """An order of `user`, created and paid through the sandbox (its signed notification)."""
        token = self.shop.served.login(user)
        created = self.shop.order(token, key, {**default_order(), **body} if body else None)
        assert created.status_code == 201, created.text
        order: dict[str, Any] = created.json()
        assert self.shop.pay(order["id"])["notifyAnswer"] == "success"
        return order


def default_order() -> dict[str, Any]:
    return {"store": "main", "mode": "dine_in", "table": "A3",
            "lines": [{"product": "latte", "quantity": 2, "choices": {"temp": ["hot"], "size": ["l"]}}]}


@pytest.fixture
def shop(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    """As test_ordering's, with the staff token set and the clock at 15:00 on a Monday in
    China (both stores open)."""
    monkeypatch.setenv(f"MPFORGE_STAFF_TOKEN_{APPID}", STAFF_TOKEN)
    clock = Clock()
    clock.now = MONDAY_3PM
    merchant = load_merchant(write_project(tmp_path / "shop", shop_spec()))
    with open_shop(database, merchant, monkeypatch, clock) as opened:
        yield opened


@pytest.fixture
def board(shop: Shop) -> Board:
    return Board(shop)


# --- login ------------------------------------------------------------------------------

def test_staff_log_in_with_the_staff_token_and_get_a_strict_cookie(board: Board) -> None:
    login_page = board.api.get(f"{BOARD}/orders")
    assert login_page.status_code == 200 and "员工口令" in login_page.text and 'id="store"' not in login_page.text
    assert "script-src 'self'" in login_page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in login_page.headers["content-security-policy"]
    answer = board.login()
    assert answer.status_code == 204
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("mpforge_staff=v1.")
    assert f"Path=/merchant/{APPID}/; Max-Age=43200; HttpOnly; SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain http here; over https (or X-Forwarded-Proto https) it is Secure
    assert STAFF_TOKEN not in cookie
    over_https = board.api.post(f"https://serve.test{BOARD}/login", json={"token": STAFF_TOKEN},
                                headers={"Origin": "https://serve.test"})
    board.api.client.cookies.clear()
    assert over_https.headers["set-cookie"].endswith("; HttpOnly; SameSite=Strict; Secure")
    staff = board.cookie()
    assert 'id="store"' in board.api.get(f"{BOARD}/orders", headers=staff).text  # the board itself
    assert board.feed(staff).status_code == 200


def test_logging_out_clears_the_cookie_and_the_page_files_are_served(board: Board) -> None:
    staff = board.cookie()
    assert board.api.post(f"{BOARD}/logout", headers={**staff, "Origin": "http://evil.example"}).status_code == 403
    out = board.api.post(f"{BOARD}/logout", headers={**staff, "Origin": ORIGIN})
    assert out.status_code == 204
    assert out.headers["set-cookie"].startswith(f"mpforge_staff=; Path=/merchant/{APPID}/; Max-Age=0;")
    script = board.api.get(f"{BOARD}/orders/static/board.js")
    assert script.status_code == 200 and script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "orders/feed" in script.text
    assert board.api.get(f"{BOARD}/orders/static/board.css").headers["content-type"] == "text/css; charset=utf-8"
    assert board.api.get(f"{BOARD}/orders/static/board.html").status_code == 404  # only the listed files
    assert board.api.get("/merchant/2021000000000099/orders").json()["error"]["code"] == "unknown_app"


def test_a_wrong_token_is_401_and_logins_are_rate_limited(board: Board) -> None:
    wrong = board.login("not-the-staff-token-not-the-staff-token")
    assert wrong.status_code == 401
    assert {k: wrong.json()["error"][k] for k in ("code", "message")} == {
        "code": "wrong_staff_token",
        "message": "this is not the shop's staff or manager token; ask the manager for it (the value of "
                   f"MPFORGE_STAFF_TOKEN_{APPID} on the server)"}
    assert [board.login("wrong").status_code for _ in range(4)] == [401] * 4
    limited = board.login()  # the sixth attempt in a row, even with the right token
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "too_many_logins"
    assert int(limited.headers["retry-after"]) > 0


def test_the_board_needs_a_valid_unexpired_cookie(board: Board, monkeypatch: pytest.MonkeyPatch) -> None:
    assert board.feed({}).json()["error"]["code"] == "login_required"
    assert board.feed({}).status_code == 401
    staff = board.cookie()
    forged = {"Cookie": staff["Cookie"][:-3] + "AAA"}
    assert board.feed(forged).status_code == 401
    assert board.act({}, "HC1", "accept").status_code == 401
    board.shop.served.clock.now = MONDAY_3PM + timedelta(hours=12, seconds=1)
    assert board.feed(staff).status_code == 401  # expired after a shift
    board.shop.served.clock.now = MONDAY_3PM
    assert board.feed(staff).status_code == 200
    # Changing the staff token logs every device out.
    monkeypatch.setenv(f"MPFORGE_STAFF_TOKEN_{APPID}", STAFF_TOKEN + "-rotated")
    assert board.feed(staff).status_code == 401


def test_without_a_staff_token_the_login_is_off(board: Board, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(f"MPFORGE_STAFF_TOKEN_{APPID}")
    off = board.login()
    assert off.status_code == 403 and off.json()["error"]["code"] == "staff_login_disabled"
    assert f"set MPFORGE_STAFF_TOKEN_{APPID} (and, for the manager" in off.json()["error"]["message"]
    page = board.api.get(f"{BOARD}/orders")  # the form says so before anyone types a token
    assert page.status_code == 403 and f"订单看板尚未开启：请在服务器上设置 MPFORGE_STAFF_TOKEN_{APPID}" in page.text
    monkeypatch.setenv(f"MPFORGE_STAFF_TOKEN_{APPID}", "short")
    assert "has 5 characters; it needs at least 32" in board.login("short").json()["error"]["message"]


def test_the_manager_token_logs_in_to_the_board_too(board: Board, monkeypatch: pytest.MonkeyPatch) -> None:
    manager_token = "manager-token-for-the-tests-0123456789a"
    monkeypatch.setenv(f"MPFORGE_MANAGER_TOKEN_{APPID}", manager_token)
    answer = board.login(manager_token)
    assert answer.status_code == 204
    manager = {"Cookie": answer.headers["set-cookie"].split(";")[0]}
    assert board.feed(manager).status_code == 200


def test_cross_origin_posts_are_refused(board: Board) -> None:
    order = board.paid_order()
    staff = board.cookie()
    for origin in ("http://evil.example", "null", None, "http://serve.test.evil.example"):
        assert board.login(origin=origin).status_code == 403
        refused = board.act(staff, order["id"], "accept", origin=origin)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "cross_origin")
    assert board.shop.stored(order["id"]).status == orders.Status.PAID


# --- what the board lists ---------------------------------------------------------------

def test_the_board_lists_a_stores_paid_orders_and_then_what_changed(board: Board) -> None:
    shop = board.shop
    main = board.paid_order()
    east = board.paid_order("bob", store="east", table=None, mode="takeaway")
    unpaid = shop.order(shop.served.login("cy"), "unpaid")  # created, not paid: not the kitchen's
    assert unpaid.status_code == 201
    shop.served.clock.now = MONDAY_3PM + timedelta(minutes=1)
    staff = board.cookie()
    listed = board.feed(staff).json()  # the first store by default
    assert (listed["store"], listed["stores"], listed["full"]) == ("main", ["main", "east"], True)
    assert listed["storeNames"]["east"] == "East"  # the store selector shows names
    assert [o["id"] for o in listed["orders"]] == [main["id"]]
    shown = listed["orders"][0]
    assert {k: shown[k] for k in ("status", "mode", "table", "total", "totalText", "actions")} == {
        "status": "paid", "mode": "dine_in", "table": "A3", "total": 6400, "totalText": "64.00",
        "actions": ["accept", "refund"]}
    assert shown["lines"] == [{"name": "拿铁", "quantity": 2, "amount": 6400, "choices": ["大杯", "热"]}]
    east_listed = board.feed(staff, store="east").json()
    assert [(o["id"], o["mode"], o["table"]) for o in east_listed["orders"]] == [(east["id"], "takeaway", None)]
    unknown = board.feed(staff, store="west")
    assert (unknown.status_code, unknown.json()["error"]["message"]) == (404, "no store 'west'; the stores are "
                                                                              "main, east")
    assert board.feed(staff, since="yesterday").json()["error"]["code"] == "invalid_cursor"

    # A minute later: with the cursor, only what changed since.
    shop.served.clock.now = MONDAY_3PM + timedelta(minutes=2)
    newer = board.paid_order("dan", "order-2")
    changes = board.feed(staff, since=listed["cursor"]).json()
    assert (changes["full"], [o["id"] for o in changes["orders"]]) == (False, [newer["id"]])
    assert changes["cursor"] > listed["cursor"]


def test_the_first_read_shows_todays_orders_and_earlier_ones_still_open(board: Board) -> None:
    shop = board.shop
    shop.served.clock.now = MONDAY_3PM - timedelta(days=1)  # Sunday
    done, waiting = board.paid_order("ann"), board.paid_order("bob")
    staff = board.cookie()
    for action in ("accept", "ready", "complete"):
        assert board.act(staff, done["id"], action).status_code == 200
    shop.served.clock.now = MONDAY_3PM
    today = board.paid_order("cy")
    staff = board.cookie()  # a new shift
    assert [o["id"] for o in board.feed(staff).json()["orders"]] == [waiting["id"], today["id"]]


# --- moving orders ----------------------------------------------------------------------

def test_accept_ready_complete_move_an_order_along(board: Board) -> None:
    order = board.paid_order()
    staff = board.cookie()
    steps = []
    for action in ("accept", "ready", "complete"):
        answer = board.act(staff, order["id"], action)
        assert answer.status_code == 200, answer.text
        steps.append((answer.json()["order"]["status"], answer.json()["order"]["actions"]))
    assert steps == [("accepted", ["ready", "refund"]), ("ready", ["complete", "refund"]),
                     ("completed", ["refund"])]
    assert board.shop.stored(order["id"]).status == orders.Status.COMPLETED
    assert board.act(staff, order["id"], "cook").json()["error"]["code"] == "unknown_action"
    assert board.act(staff, "HC20260302FFFFFFFFFFFF", "accept").status_code == 404


def test_a_move_no_longer_allowed_is_409_with_the_order_as_it_is(board: Board) -> None:
    order = board.paid_order()
    staff = board.cookie()
    assert board.act(staff, order["id"], "accept").status_code == 200
    again = board.act(staff, order["id"], "accept")  # a second device, a moment late
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert again.json()["order"]["status"] == "accepted"
    assert board.act(staff, order["id"], "ready").status_code == 200
    backwards = board.act(staff, order["id"], "accept")
    assert (backwards.status_code, backwards.json()["order"]["status"]) == (409, "ready")
    assert "is ready now and cannot become accepted" in backwards.json()["error"]["message"]
    unpaid = board.shop.order(board.shop.served.login("bob"), "unpaid").json()
    assert board.act(staff, unpaid["id"], "accept").status_code == 404  # not on the board


def test_a_refund_goes_through_the_sandbox_once(board: Board) -> None:
    order = board.paid_order()
    staff = board.cookie()
    assert board.act(staff, order["id"], "accept").status_code == 200
    refunded = board.act(staff, order["id"], "refund")
    assert refunded.status_code == 200, refunded.text
    assert (refunded.json()["order"]["status"], refunded.json()["order"]["actions"]) == ("refunded", [])
    trade = trades(board.shop.served.sandbox.state).get(APPID, order["id"])
    assert trade is not None and trade.refunded == Decimal("64.00") and trade.status == "TRADE_CLOSED"
    again = board.act(staff, order["id"], "refund")
    assert (again.status_code, again.json()["order"]["status"]) == (409, "refunded")
    assert trades(board.shop.served.sandbox.state).get(APPID, order["id"]).refunded == Decimal("64.00")  # type: ignore[union-attr]


def test_a_refund_alipay_refuses_shows_its_reason_and_changes_nothing(board: Board) -> None:
    order = board.paid_order()
    staff = board.cookie()
    # Refunded already at Alipay (e.g. from Alipay's merchant site): nothing is left to refund.
    client = board.shop.served.app.state.api.clients[APPID]
    client.trade_refund(out_trade_no=order["id"], refund_amount="64.00", out_request_no="elsewhere")
    refused = board.act(staff, order["id"], "refund")
    assert refused.status_code == 502
    error = refused.json()["error"]
    assert (error["code"], error["alipaySubCode"]) == ("alipay_refused", "ACQ.TRADE_STATUS_ERROR")  # closed
    assert error["message"].startswith("Alipay refused the refund: ") and "the order is unchanged" in error["message"]
    assert board.shop.stored(order["id"]).status == orders.Status.PAID

    other = board.paid_order("bob", "order-2")
    board.shop.served.sandbox.state.faults = Faults(busy=True)
    busy = board.act(staff, other["id"], "refund")
    assert (busy.status_code, busy.json()["error"]["code"]) == (503, "alipay_unavailable")
    board.shop.served.sandbox.state.faults = Faults()
    assert board.shop.stored(other["id"]).status == orders.Status.PAID
    assert board.act(staff, other["id"], "refund").json()["order"]["status"] == "refunded"  # the retry


def test_two_processes_on_one_database_show_the_same_board(board: Board, database: Database,
                                                           tmp_path: Path) -> None:
    """Another `mpforge serve` process on the same database: what one process's board
    does, the other's shows at its next read (nothing is kept in a process's memory)."""
    shop = board.shop
    merchant = load_merchant(write_project(tmp_path / "shop2", shop_spec()))
    second_app = create_app([merchant], database.url, alipay=shop.served.sandbox.alipay, secret=SECRET,
                            clock=shop.served.clock)
    second = ApiClient(second_app)
    try:
        staff = board.cookie()  # signed with the staff token, which both processes read
        order = board.paid_order()
        first_read = second.get(f"{BOARD}/orders/feed", headers=staff).json()
        assert [o["id"] for o in first_read["orders"]] == [order["id"]]
        accepted = second.post(f"{BOARD}/orders/{order['id']}/accept", headers={**staff, "Origin": ORIGIN})
        assert accepted.status_code == 200
        assert board.feed(staff).json()["orders"][0]["status"] == "accepted"
        assert board.act(staff, order["id"], "accept").status_code == 409
    finally:
        second.close()
        second_app.state.api.storage.dispose()


# --- the page in Chromium ---------------------------------------------------------------

def card(tab: Any, column: str, order_id: str) -> Any:
    return tab.locator(f'[data-column="{column}"] .card[data-id="{order_id}"]')


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # the HTTP tests above cover PostgreSQL
def test_the_board_in_chromium(board: Board, strict_page: Any) -> None:
    """Under the page's own Content-Security-Policy: log in, an order paid through the
    sandbox appears without a reload (with the new-order banner), accept / ready /
    complete move its card, a refund asks first and moves it to the refunded ones."""
    SCREENSHOTS.mkdir(exist_ok=True)
    tab = strict_page
    tab.set_viewport_size({"width": 1024, "height": 900})  # a landscape tablet
    violations: list[str] = []
    tab.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    url = f"{board.shop.live.url}{BOARD}/orders"
    tab.goto(url)
    tab.fill("#token", "wrong-token")
    tab.click("#login-button")
    tab.locator("#login-error", has_text="口令不对").wait_for()
    tab.screenshot(path=str(SCREENSHOTS / "1-login-refused.png"))
    tab.fill("#token", STAFF_TOKEN)
    tab.click("#login-button")
    tab.locator(".live", has_text="实时更新").wait_for(timeout=10_000)
    assert tab.locator("#store").input_value() == "main"
    tab.screenshot(path=str(SCREENSHOTS / "2-empty-board.png"))

    order = board.paid_order()
    card(tab, "paid", order["id"]).wait_for(timeout=10_000)  # polled, no reload
    assert tab.locator("#banner").is_visible() and "新订单" in tab.locator("#banner").inner_text()
    shown = card(tab, "paid", order["id"]).inner_text()
    assert "堂食 · 桌 A3" in shown and "拿铁" in shown and "大杯 · 热" in shown and "合计 ¥64.00" in shown
    assert card(tab, "paid", order["id"]).get_attribute("class") == "card status-paid new"
    second = board.paid_order("bob", "order-2", table="B7",
                              lines=[{"product": "croissant", "quantity": 2}])
    card(tab, "paid", second["id"]).wait_for(timeout=10_000)
    tab.screenshot(path=str(SCREENSHOTS / "3-new-orders.png"))

    for action, label, column in (("accept", "接单", "accepted"), ("ready", "出餐", "ready"),
                                  ("complete", "完成", "completed")):
        source = tab.locator(f'.card[data-id="{order["id"]}"]')
        assert source.locator(f'button[data-action="{action}"]').inner_text() == label
        source.locator(f'button[data-action="{action}"]').click()
        card(tab, column, order["id"]).wait_for(timeout=10_000)
        if column == "accepted":
            tab.screenshot(path=str(SCREENSHOTS / "4-accepted.png"))
    assert board.shop.stored(order["id"]).status == orders.Status.COMPLETED
    assert [b.inner_text() for b in card(tab, "completed", order["id"]).locator("button").all()] == ["退款"]

    dialogs: list[str] = []

    def answer(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    tab.once("dialog", answer)
    card(tab, "paid", second["id"]).locator('button[data-action="refund"]').click()
    card(tab, "closed", second["id"]).wait_for(state="attached", timeout=10_000)
    assert dialogs and "退款 ¥19.00" in dialogs[0]
    assert board.shop.stored(second["id"]).status == orders.Status.REFUNDED
    tab.locator("#toast", has_text="已退款").wait_for()
    tab.click("#closed summary")
    tab.screenshot(path=str(SCREENSHOTS / "5-completed-and-refunded.png"), full_page=True)

    tab.set_viewport_size({"width": 768, "height": 1024})  # a portrait tablet
    tab.screenshot(path=str(SCREENSHOTS / "6-portrait-tablet.png"), full_page=True)
    assert violations == [] and tab.errors == []
