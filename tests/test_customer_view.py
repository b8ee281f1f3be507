"""The merchant's customer view (plugins/membership/customer_view.py, segments.py,
funnel.py, crowds.py, audience.py, sandbox_qipan.py): a scripted day of visits, follows,
claims, cards and orders, then the segments evaluated, the CSV export, the push to the
sandbox's 棋盘密云, the manager-only login, on SQLite and PostgreSQL; then the page in
Chromium, with screenshots in /tmp/customer-view-screenshots.

The day goes through the real API where it exists: sessions (sandbox logins), events
POSTed to the promotion plugin's /events, coupon claims issued by the sandbox's
ordervoucher.send, orders created and paid through the sandbox (its signed
notification). Three things are written as rows instead, because the routes that make
them belong to other parts of the membership plugin (card_api.py, points.py): a member's
card (membership_customers.biz_card_no, with the mobile's SHA-256 the claim form gives),
their points, and the follow's points (followed_at). An open_id customer (an app on
Alipay's OpenID scheme) is added with Storage.add_user, as the session route does.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import write_project
from serve_support import APPID, NOON, Clock, Database
from sqlalchemy import insert, select, update
from test_ordering import Shop, open_shop, shop_spec

from builder.errors import UserError
from builder.pipeline import prepare
from builder.serve.alipay_client import CrowdUser
from builder.serve.alipay_errors import AlipayError
from builder.serve.merchant import load_merchant
from builder.serve.sandbox_state import sandbox_open_id, sandbox_user_id
from builder.serve.storage import AlipayUser, Event, Storage
from plugins.membership import MIGRATIONS as MEMBERSHIP_MIGRATIONS
from plugins.membership import funnel
from plugins.membership.audience import in_audience
from plugins.membership.customer_view import _cell, segment_csv
from plugins.membership.models import MembershipSection
from plugins.membership.privacy import forget_user
from plugins.membership.sandbox_qipan import crowds
from plugins.membership.segments import customers_query, in_segment, list_customers, orders_table, segment_members
from plugins.membership.tables import CROWD_USERS, CROWDS, CUSTOMERS
from plugins.ordering.orders import ORDERS

pytest_plugins = ["serve_fixtures"]  # database, postgres

MANAGER_TOKEN = "manager-token-for-the-tests-0123456789a"  # at least 32 characters
STAFF_TOKEN = "staff-token-for-the-tests-0123456789abc"
ORIGIN = "http://serve.test"  # ApiClient's base URL: the Host the app sees
VIEW = f"/merchant/{APPID}/customers"
SCREENSHOTS = Path("/tmp/customer-view-screenshots")
DAY = "2026-03-02"  # NOON's China date
MONTH_AGO = NOON - timedelta(days=30)
LUNCH = NOON + timedelta(hours=1)  # the orders are paid
SEGMENTS = [
    {"id": "members", "name": "全部会员", "rule": {"member": True}},
    {"id": "silver", "name": "银卡会员", "rule": {"levels": ["silver"]}},
    {"id": "regulars", "name": "常客", "rule": {"min_orders": 2}},
    {"id": "lapsed", "name": "流失顾客", "rule": {"inactive_days": 14}},
    {"id": "poster-fans", "name": "海报新客", "rule": {"active_days": 7, "channel": "poster"},
     "description": "最近 7 天来过、第一次从海报进来"},
    {"id": "rich", "name": "积分大户", "rule": {"min_points": 50, "member": True}},
]
ENTRY_POINTS = [
    {"id": "table-12", "name": "12 号桌贴", "kind": "table-sticker", "description": "Table 12 sticker", "page": "home",
     "channel": "table-sticker", "store": "main"},
    {"id": "poster-a", "name": "门口海报", "kind": "poster", "description": "Door poster", "page": "home",
     "channel": "poster"},
]


def view_spec() -> dict[str, Any]:
    spec = shop_spec()
    spec["coupon"] = {"coupons": [{"id": "welcome", "kind": "cash", "title": "新客 5 元", "value": 5,
                                   "validity": {"days_after_claim": 7}, "stock": 50, "per_user_limit": 1,
                                   "activity_id": "act-welcome"},
                                  {"id": "regulars-treat", "kind": "cash", "title": "常客 3 元", "value": 3,
                                   "validity": {"days_after_claim": 7}, "stock": 50, "per_user_limit": 1,
                                   "activity_id": "act-regulars-treat", "audience": "segment",
                                   "segment": "regulars"}]}
    spec["promotion"] = {"entry_points": copy.deepcopy(ENTRY_POINTS)}
    spec["membership"] = {
        "card": {"title": "测试会员卡", "logo": "banner.png", "background": "banner.png",
                 "plugin_provider": "2021000000009999"},
        "levels": [{"id": "basic", "name": "普卡", "min_points": 0}, {"id": "silver", "name": "银卡", "min_points": 100}],
        "segments": copy.deepcopy(SEGMENTS)}
    return spec


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Day:
    """The shop after the scripted day, and who is who."""

    shop: Shop
    users: dict[str, AlipayUser]

    @property
    def api(self) -> Any:
        return self.shop.api

    @property
    def section(self) -> MembershipSection:
        section = self.shop.served.app.state.api.merchants[APPID].sections["membership"]
        assert isinstance(section, MembershipSection)
        return section

    def login(self, token: str = MANAGER_TOKEN) -> dict[str, str]:
        answer = self.api.post(f"/merchant/{APPID}/login", json={"token": token}, headers={"Origin": ORIGIN})
        self.api.client.cookies.clear()  # each request sends the cookie it means to
        assert answer.status_code == 204, answer.text
        value = re.match(r"mpforge_staff=([^;]+);", answer.headers["set-cookie"])
        assert value is not None
        return {"Cookie": f"mpforge_staff={value.group(1)}"}

    def get(self, path: str, cookie: dict[str, str], **params: str) -> httpx.Response:
        return self.api.get(f"{VIEW}{path}", params=params, headers=cookie)

    def push(self, segment: str, cookie: dict[str, str], origin: str | None = ORIGIN) -> httpx.Response:
        headers = {**cookie, **({"Origin": origin} if origin else {})}
        return self.api.post(f"{VIEW}/segments/{segment}/push", headers=headers)

    def customer(self, name: str, **values: Any) -> None:
        """Insert or change `name`'s membership_customers row (what card_api / points write)."""
        user = self.users[name]
        storage = self.shop.served.storage
        with storage.engine.connect() as conn, conn.begin():
            changed = conn.execute(update(CUSTOMERS).where(
                CUSTOMERS.c.appid == APPID, CUSTOMERS.c.user_kind == user.kind, CUSTOMERS.c.alipay_user == user.id)
                .values(**values, updated_at=NOON)).rowcount
            if not changed:
                conn.execute(insert(CUSTOMERS).values({
                    "appid": APPID, "user_kind": user.kind, "alipay_user": user.id, "points": 0, "earned": 0,
                    "stamps": 0, "cards_filled": 0, "created_at": NOON, "updated_at": NOON, **values}))


def post_events(shop: Shop, token: str | None, events: list[dict[str, Any]], device: str | None = None) -> None:
    body: dict[str, Any] = {"events": events}
    if device:
        body["anonymousId"] = device
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = shop.api.post(f"/api/v1/{APPID}/events", json=body, headers=headers)
    assert answer.status_code == 202, answer.text


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def opened(moment: datetime, channel: str | None = None, entry_point: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"kind": "open", "at": ms(moment), "scene": "1011"}
    if channel:
        event.update(channel=channel, entryPoint=entry_point)
    return event


def paid_order(shop: Shop, token: str, key: str) -> None:
    created = shop.order(token, key)
    assert created.status_code == 201, created.text
    assert shop.pay(created.json()["id"])["notifyAnswer"] == "success"


def script_the_day(shop: Shop) -> Day:
    """The day (China time, 2026-03-02) the tests read:

    * ann: scans table 12's sticker, follows the life account (an event), claims the
      welcome coupon, holds the card (120 points earned, 80 now, a mobile given), pays 2
      orders at 13:00;
    * bob: comes through the door poster, follow points given, claims, pays 1 order;
    * cy: table 12's sticker, holds the card (30 points), no mobile;
    * dan: opens the app with no channel;
    * eve: came through the poster 30 days ago and not since;
    * fay: a card holder of an OpenID-scheme login (open_id), no event;
    * two devices that never logged in: one through the poster, one direct.
    """
    served = shop.served
    served.clock.now = MONTH_AGO
    eve = served.login("eve")
    post_events(shop, eve, [opened(MONTH_AGO, "poster", "poster-a")])
    served.clock.now = NOON
    tokens = {name: served.login(name) for name in ("ann", "bob", "cy", "dan")}
    morning = NOON - timedelta(hours=2)
    post_events(shop, tokens["ann"], [opened(morning, "table-sticker", "table-12"),
                                      {"kind": "follow", "at": ms(morning + timedelta(minutes=1))}])
    post_events(shop, tokens["bob"], [opened(morning, "poster", "poster-a")])
    post_events(shop, tokens["cy"], [opened(morning, "table-sticker", "table-12")])
    post_events(shop, tokens["dan"], [opened(morning)])
    post_events(shop, None, [opened(morning, "poster", "poster-a")], device="device-poster-1")
    post_events(shop, None, [opened(morning)], device="device-direct-1")
    for name in ("ann", "bob"):
        claimed = served.claim(tokens[name], "welcome", f"claim-{name}")
        assert claimed.status_code == 201 and claimed.json()["result"] == "CLAIMED", claimed.text
    served.clock.now = LUNCH
    paid_order(shop, tokens["ann"], "ann-1")
    paid_order(shop, tokens["ann"], "ann-2")
    paid_order(shop, tokens["bob"], "bob-1")
    fay_id = sandbox_open_id(APPID, sandbox_user_id("fay"))
    served.storage.add_user(APPID, AlipayUser("open_id", fay_id))
    users = {name: AlipayUser("user_id", sandbox_user_id(name)) for name in ("ann", "bob", "cy", "dan", "eve")}
    users["fay"] = AlipayUser("open_id", fay_id)
    day = Day(shop, users)
    day.customer("ann", points=80, earned=120, biz_card_no="C-ANN", card_opened_at=morning,
                 mobile_sha256=sha256("13800000001"))
    day.customer("bob", followed_at=morning)
    day.customer("cy", points=30, earned=30, biz_card_no="C-CY", card_opened_at=morning)
    day.customer("fay", points=5, earned=5, biz_card_no="C-FAY", card_opened_at=morning)
    return day


@pytest.fixture
def day(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Day]:
    monkeypatch.setenv(f"MPFORGE_MANAGER_TOKEN_{APPID}", MANAGER_TOKEN)
    monkeypatch.setenv(f"MPFORGE_STAFF_TOKEN_{APPID}", STAFF_TOKEN)
    merchant = load_merchant(write_project(tmp_path / "shop", view_spec()))
    clock = Clock()
    with open_shop(database, merchant, monkeypatch, clock) as shop:
        yield script_the_day(shop)


def members_of(day: Day, segment_id: str) -> list[str]:
    names = {user: name for name, user in day.users.items()}
    segment = next(s for s in day.section.segments if s.id == segment_id)
    return sorted(names[c.user] for c in segment_members(day.shop.served.storage, APPID, day.section, segment, NOON))


# --- segments -----------------------------------------------------------------------------

def test_a_segment_naming_an_unknown_level_is_located(tmp_path: Path) -> None:
    spec = view_spec()
    spec["membership"]["segments"][1]["rule"]["levels"] = ["silver", "gold"]
    with pytest.raises(UserError) as info:
        prepare(write_project(tmp_path, spec))
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("membership.segments[1].rule.levels[1]",
         "segment 'silver' names level 'gold', which membership.levels does not have")]


def test_segments_hold_exactly_the_customers_their_rules_say(day: Day) -> None:
    assert {s["id"]: members_of(day, s["id"]) for s in SEGMENTS} == {
        "members": ["ann", "cy", "fay"],
        "silver": ["ann"],  # 120 earned reaches 银卡 (100), though 80 are left
        "regulars": ["ann"],  # two paid orders
        "lapsed": ["eve"],  # 30 days since her only visit
        "poster-fans": ["bob"],  # eve came first through the poster too, but not in 7 days
        "rich": ["ann"],
    }
    storage = day.shop.served.storage
    lapsed = next(s for s in day.section.segments if s.id == "lapsed")
    assert in_segment(storage, APPID, day.users["eve"], lapsed, day.section)
    assert not in_segment(storage, APPID, day.users["ann"], lapsed, day.section)
    assert not in_segment(storage, APPID, AlipayUser("user_id", "2088000000000000"), lapsed, day.section)
    # Time passes: 15 days on, everyone who came today is lapsed too (fay's last visit: her login).
    storage.clock = lambda: NOON + timedelta(days=15)  # type: ignore[method-assign]
    assert in_segment(storage, APPID, day.users["ann"], lapsed, day.section)


def test_a_refunded_order_is_not_counted(day: Day) -> None:
    with day.shop.served.storage.engine.connect() as conn, conn.begin():
        conn.execute(update(ORDERS).where(ORDERS.c.idempotency_key == "ann-2").values(status="refunded"))
    assert members_of(day, "regulars") == []


def test_without_the_ordering_plugins_table_no_one_has_paid_orders(tmp_path: Path) -> None:
    """A database whose ordering migration never ran (the plugin disabled): the orders
    table is not there, and segments and the funnel count no paid orders instead of
    failing."""
    section = load_merchant(write_project(tmp_path / "shop", view_spec())).sections["membership"]
    storage = Storage(f"sqlite:///{tmp_path / 'serve.sqlite3'}", clock=lambda: NOON)
    try:
        storage.migrate([MEMBERSHIP_MIGRATIONS])
        ann = AlipayUser("user_id", sandbox_user_id("ann"))
        storage.add_user(APPID, ann)
        storage.add_events(APPID, ann, None, [Event("open", NOON, channel="poster", entry_point="poster-a")])
        with storage.engine.connect() as conn:
            assert orders_table(conn) is None
        regulars = next(s for s in section.segments if s.id == "regulars")
        assert segment_members(storage, APPID, section, regulars, NOON) == []
        assert [(c.user, c.paid_orders, c.first_channel) for c in list_customers(storage, APPID, section, NOON,
                                                                                 10)[1]] == [(ann, 0, "poster")]
        found = funnel.visitors(storage, APPID, NOON - timedelta(hours=1), NOON + timedelta(hours=1))
        assert funnel.total(found).counts == [1, 0, 0, 0, 0]
    finally:
        storage.dispose()


def test_coupon_audiences_members_and_segments(day: Day) -> None:
    storage = day.shop.served.storage
    sections = day.shop.served.app.state.api.merchants[APPID].sections
    assert in_audience(storage, APPID, day.users["ann"], "members", sections) is True
    assert in_audience(storage, APPID, day.users["bob"], "members", sections) is False
    assert in_audience(storage, APPID, day.users["ann"], "segment:regulars", sections) is True
    assert in_audience(storage, APPID, day.users["cy"], "segment:regulars", sections) is False
    assert in_audience(storage, APPID, day.users["ann"], "segment:nope", sections) is False
    assert in_audience(storage, APPID, day.users["ann"], "followers", sections) is None
    hooks = day.shop.served.app.state.api.plugins
    assert hooks.serve_in_audience(storage, APPID, day.users["eve"], "segment:lapsed", sections) is True


def test_a_segment_coupon_is_claimed_only_by_the_segments_customers(day: Day) -> None:
    """POST coupons/{id}/claims of an `audience: segment` coupon: refused before anything
    is stored to a customer outside the segment, issued to one inside."""
    served = day.shop.served
    outside = served.claim(served.login("cy"), "regulars-treat", "treat-cy")  # no paid order
    assert (outside.status_code, outside.json()["error"]["code"]) == (403, "not_in_segment")
    assert served.taken("regulars-treat") == 0
    inside = served.claim(served.login("ann"), "regulars-treat", "treat-ann")  # two paid orders
    assert (inside.status_code, inside.json()["result"]) == (201, "CLAIMED"), inside.text
    assert served.taken("regulars-treat") == 1


CUSTOMER_TABLES = ("users", "events", "claims", "orders", "membership_stamps", "membership_customers")


def query_plan(storage: Storage, query: Any) -> list[str]:
    """The database's plan of `query`, a line a step: SQLite's EXPLAIN QUERY PLAN,
    PostgreSQL's EXPLAIN with sequential scans off (a table an index can reach is then
    read by it, however few rows the test put in it)."""
    with storage.engine.connect() as conn, conn.begin():
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        if storage.dialect == "sqlite":
            return [str(row[3]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return [str(row[0]).strip() for row in conn.exec_driver_sql(f"EXPLAIN {sql}")]


def table_reads(plan: list[str], table: str) -> list[tuple[str, str]]:
    """Each read of `table` in the plan, with the condition its index was searched by
    ("" for a scan of the whole table). SQLite: `SEARCH t USING INDEX i (a=? AND b=?)`;
    PostgreSQL: `-> Index Scan using i on t`, its `Index Cond:` on the lines after."""
    found = []
    for i, line in enumerate(plan):
        if re.match(rf"(?:SCAN|SEARCH) {table}\b", line):
            searched = re.search(r"\((.*)\)", line)
            found.append((line, searched.group(1) if searched else ""))
        elif re.search(rf"Scan\b.* on {table}\b", line):
            details = plan[i + 1:]
            ends = next((j for j, d in enumerate(details) if d.startswith("->")), len(details))
            found.append((line, " ".join(d for d in details[:ends] if d.startswith("Index Cond:"))))
    return found


def test_one_customers_segment_test_reads_their_rows_not_the_apps(day: Day) -> None:
    """in_segment, run at every claim of a segment coupon, asks customers_query for the
    one customer: every table it reads is searched by an index on the customer's
    (appid, user_kind, alipay_user), events by ix_events_appid_user_kind_alipay_user_at
    (core revision 0003), and no table's rows of the whole app are read. The app's query
    (the customer view's lists) does read all of the app's events."""
    storage = day.shop.served.storage
    ann = day.users["ann"]
    with storage.engine.connect() as conn:
        one = select(customers_query(conn, APPID, day.section, ann))
        everyone = select(customers_query(conn, APPID, day.section))
    plan = query_plan(storage, one)

    def by_user(condition: str) -> bool:  # the search names the customer's id
        return "alipay_user=?" in condition if storage.dialect == "sqlite" else \
            re.search(rf"alipay_user\)?(?:::text)? = '{ann.id}'", condition) is not None

    for table in CUSTOMER_TABLES:
        reads = table_reads(plan, table)
        assert reads and all(by_user(condition) for _, condition in reads), (table, plan)
    assert all("ix_events_appid_user_kind_alipay_user_at" in read for read, _ in table_reads(plan, "events")), plan
    app_wide = table_reads(query_plan(storage, everyone), "events")
    assert app_wide and not any(by_user(condition) for _, condition in app_wide), app_wide


# --- the JSON the page reads --------------------------------------------------------------

def test_the_funnel_counts_the_days_visitors_per_channel_and_entry_point(day: Day) -> None:
    manager = day.login()
    funnel = day.get("/funnel", manager, **{"from": DAY, "to": DAY})
    assert funnel.status_code == 200, funnel.text
    data = funnel.json()
    assert [s["id"] for s in data["steps"]] == ["visit", "follow", "claim", "member", "repeat"]
    assert data["total"] == [6, 2, 2, 2, 1]
    assert [(c["name"], c["counts"]) for c in data["channels"]] == [
        ("poster", [2, 1, 1, 0, 0]), ("table-sticker", [2, 1, 1, 2, 1]), ("直接访问", [2, 0, 0, 0, 0])]
    assert [(e["key"], e["name"], e["counts"]) for e in data["entryPoints"]] == [
        ("poster-a", "门口海报", [2, 1, 1, 0, 0]), ("table-12", "12 号桌贴", [2, 1, 1, 2, 1]),
        ("", "直接访问", [2, 0, 0, 0, 0])]
    month = day.get("/funnel", manager, **{"from": "2026-01-31", "to": DAY}).json()
    assert month["total"] == [7, 2, 2, 2, 1]  # eve's visit too
    assert day.get("/funnel", manager, **{"from": "2026-03-01", "to": "2026-03-01"}).json()["total"] == [0] * 5
    for bad in ({"from": "yesterday"}, {"from": DAY, "to": "2026-03-01"}, {"from": "2025-01-01", "to": DAY}):
        refused = day.get("/funnel", manager, **bad)
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, "invalid_dates")


def test_customers_and_segments_are_listed(day: Day) -> None:
    manager = day.login()
    listed = day.get("/list", manager).json()
    assert listed["total"] == 6
    by_user = {c["user"]: c for c in listed["customers"]}
    ann = by_user[day.users["ann"].id]
    assert {k: ann[k] for k in ("member", "level", "levelName", "points", "paidOrders", "segments")} == {
        "member": True, "level": "silver", "levelName": "银卡", "points": 80, "paidOrders": 2,
        "segments": ["members", "silver", "regulars", "rich"]}
    assert datetime.fromisoformat(ann["lastVisit"]) == LUNCH  # her last order
    bob = by_user[day.users["bob"].id]
    assert (bob["member"], bob["level"], bob["segments"]) == (False, None, ["poster-fans"])
    assert datetime.fromisoformat(by_user[day.users["eve"].id]["lastVisit"]) == MONTH_AGO
    assert listed["customers"][-1]["user"] == day.users["eve"].id  # the least recent visitor last
    segments = day.get("/segments", manager).json()["segments"]
    assert [(s["id"], s["count"], s["crowd"]) for s in segments] == [
        ("members", 3, None), ("silver", 1, None), ("regulars", 1, None), ("lapsed", 1, None),
        ("poster-fans", 1, None), ("rich", 1, None)]


def test_a_segment_exports_as_csv_without_formulas(day: Day) -> None:
    manager = day.login()
    answer = day.get("/segments/members.csv", manager)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == f'attachment; filename="segment-members-{DAY}.csv"'
    assert answer.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0] == ["user_kind", "alipay_user", "member", "level", "points", "paid_orders", "last_visit"]
    by_user = {row[1]: row for row in rows[1:]}
    assert sorted(by_user) == sorted(day.users[n].id for n in ("ann", "cy", "fay"))
    assert by_user[day.users["ann"].id] == ["user_id", day.users["ann"].id, "yes", "银卡", "80", "2",
                                            by_user[day.users["ann"].id][6]]
    assert by_user[day.users["ann"].id][6].endswith("+08:00")
    assert by_user[day.users["fay"].id][:5] == ["open_id", day.users["fay"].id, "yes", "普卡", "5"]
    # A cell a spreadsheet would run as a formula starts with ' instead (a level's name is
    # the merchant's own text).
    assert [_cell(v) for v in ("=1+1", "+86", "-3", "@SUM(A1)", "ok", None)] == [
        "'=1+1", "'+86", "'-3", "'@SUM(A1)", "ok", ""]
    members = segment_members(day.shop.served.storage, APPID, day.section, day.section.segments[1], NOON)
    exported = list(csv.reader(io.StringIO(segment_csv(members, {"silver": '=HYPERLINK("http://evil.example")'}))))
    assert exported[1][3] == '\'=HYPERLINK("http://evil.example")'
    assert day.get("/segments/nope.csv", manager).json()["error"]["code"] == "unknown_segment"


# --- 棋盘密云 ------------------------------------------------------------------------------

def test_a_segment_is_pushed_to_qipan_then_only_the_difference(day: Day) -> None:
    manager = day.login()
    state = crowds(day.shop.served.sandbox.state)
    first = day.push("members", manager)
    assert first.status_code == 200, first.text
    pushed = first.json()
    assert {k: pushed[k] for k in ("created", "added", "removed", "inCrowd", "unpushable")} == {
        "created": True, "added": 2, "removed": 0, "inCrowd": 2, "unpushable": 1}
    assert "SHA256" in pushed["unpushableReason"]  # cy: a 2088 user id and no mobile
    crowd = state.get(pushed["crowdCode"])
    assert crowd is not None and crowd.name == "全部会员" and crowd.external_crowd_code == f"mpforge-{APPID}-members"
    assert crowd.users == {("SHA256_MOBILE", sha256("13800000001"), ""),
                           ("OPEN_ID", day.users["fay"].id, APPID)}
    assert not any(value.startswith("2088") for _, value, _ in crowd.users)  # never a 2088 id
    assert state.calls == {"create": 1}

    # cy gives a mobile, fay's card is gone: the next push adds cy and removes fay, nothing else.
    day.customer("cy", mobile_sha256=sha256("13800000003"))
    day.customer("fay", biz_card_no=None)
    second = day.push("members", manager).json()
    assert {k: second[k] for k in ("crowdCode", "created", "added", "removed", "inCrowd", "unpushable")} == {
        "crowdCode": pushed["crowdCode"], "created": False, "added": 1, "removed": 1, "inCrowd": 2, "unpushable": 0}
    crowd = state.get(pushed["crowdCode"])
    assert crowd is not None and crowd.users == {("SHA256_MOBILE", sha256("13800000001"), ""),
                                                 ("SHA256_MOBILE", sha256("13800000003"), "")}
    assert state.calls == {"create": 1, "add": 1, "delete": 1}
    assert day.push("members", manager).json()["added"] == 0 and state.calls == {"create": 1, "add": 1, "delete": 1}
    stored = day.shop.served.rows(CROWD_USERS)
    assert sorted(r["user_value"] for r in stored) == sorted([sha256("13800000001"), sha256("13800000003")])
    assert [(r["segment"], r["users"]) for r in day.shop.served.rows(CROWDS)] == [("members", 2)]
    listed = {s["id"]: s["crowd"] for s in day.get("/segments", manager).json()["segments"]}
    assert listed["members"]["code"] == pushed["crowdCode"] and listed["members"]["users"] == 2


def test_a_segment_with_no_pushable_customer_is_not_created(day: Day) -> None:
    manager = day.login()
    refused = day.push("lapsed", manager)  # eve: a 2088 user id, no card, no mobile
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "nothing_to_push" and "1 not pushable" in refused.json()["error"][
        "message"]
    assert crowds(day.shop.served.sandbox.state).calls == {}


def test_the_sandbox_refuses_what_qipan_refuses(day: Day) -> None:
    client = day.shop.served.app.state.api.clients[APPID]
    with pytest.raises(ValueError, match="1 to 15 characters"):
        client.qipan_crowd_create(name="一二三四五六七八九十一二三四五六", external_code="x", users=[])
    with pytest.raises(ValueError, match="at most 1000"):
        client.qipan_crowd_add("QP1", [CrowdUser("SHA256_MOBILE", sha256(str(i))) for i in range(1001)])
    with pytest.raises(AlipayError) as info:  # a 2088 id passed as an open_id
        client.qipan_crowd_create(name="x", external_code="x", users=[CrowdUser("OPEN_ID", "2088000000000001",
                                                                                 APPID)])
    assert info.value.sub_code == "INVALID_PARAMETER" and "2088" in info.value.sub_msg
    code = client.qipan_crowd_create(name="x", external_code="once", users=[CrowdUser("SHA256_MOBILE", sha256("1"))])
    with pytest.raises(AlipayError, match="INVALID_PARAMETER"):  # external_crowd_code is unique
        client.qipan_crowd_create(name="y", external_code="once", users=[CrowdUser("SHA256_MOBILE", sha256("2"))])
    with pytest.raises(AlipayError):
        client.qipan_crowd_add("QP-unknown", [CrowdUser("SHA256_MOBILE", sha256("2"))])
    with pytest.raises(AlipayError):
        client.qipan_crowd_add(code, [CrowdUser("SHA256_MOBILE", "not-a-hash")])



def test_a_forgotten_member_leaves_alipays_crowd_at_the_next_push(day: Day) -> None:
    """DELETE me/data keeps the crowd entry until the next push, which removes it at
    Alipay (crowduser.delete) and then here."""
    manager = day.login()
    state = crowds(day.shop.served.sandbox.state)
    pushed = day.push("members", manager).json()
    ann = ("SHA256_MOBILE", sha256("13800000001"), "")
    assert ann in state.get(pushed["crowdCode"]).users
    forget_user(day.shop.served.storage, APPID, day.users["ann"])  # the membership part of DELETE me/data
    day.push("members", manager)
    assert ann not in state.get(pushed["crowdCode"]).users
    with day.shop.served.storage.engine.connect() as conn:
        assert sha256("13800000001") not in {row.user_value for row in conn.execute(CROWD_USERS.select())}

# --- who may use the view -----------------------------------------------------------------

def test_the_view_is_for_the_manager_only(day: Day) -> None:
    form = day.api.get(VIEW)
    assert form.status_code == 200 and "店长口令" in form.text and "channel-chart" not in form.text
    assert "script-src 'self'" in form.headers["content-security-policy"]
    assert day.get("/funnel", {}).status_code == 401
    staff = day.login(STAFF_TOKEN)
    refused = day.api.get(VIEW, headers=staff)
    assert refused.status_code == 403 and "此页面仅限店长：请用店长口令" in refused.text
    for path in ("/funnel", "/list", "/segments", "/segments/members.csv"):
        answer = day.get(path, staff)
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "manager_only"), path
    assert day.push("members", staff).status_code == 403
    manager = day.login()
    page = day.api.get(VIEW, headers=manager)
    assert page.status_code == 200 and 'id="channel-chart"' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'; script-src 'self'" in csp and "unsafe" not in csp
    assert '<script src="customers/static/chart.umd.min.js"></script>' in page.text
    assert "<script>" not in page.text and " on" not in re.sub(r"<script src=[^>]+>", "", page.text).split("<body")[1]
    chart = day.api.get(f"{VIEW}/static/chart.umd.min.js")
    assert chart.status_code == 200 and "Chart.js v4.6.1" in chart.text
    assert day.api.get(f"{VIEW}/static/customers.html").status_code == 404
    for origin in ("http://evil.example", None):
        cross = day.push("members", manager, origin=origin)
        assert (cross.status_code, cross.json()["error"]["code"]) == (403, "cross_origin")
    assert crowds(day.shop.served.sandbox.state).calls == {}


# --- the page in Chromium -----------------------------------------------------------------

@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # the HTTP tests above cover PostgreSQL
def test_the_customer_view_in_chromium(day: Day, strict_page: Any) -> None:
    """Under the page's own Content-Security-Policy: log in, the funnel of the scripted day
    shows its numbers and both charts draw; the customers and segments are listed; a
    push answers in the segment's row."""
    SCREENSHOTS.mkdir(exist_ok=True)
    tab = strict_page
    tab.set_viewport_size({"width": 1280, "height": 900})
    violations: list[str] = []
    tab.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    tab.goto(f"{day.shop.live.url}{VIEW}?from={DAY}&to={DAY}")
    tab.fill("#token", STAFF_TOKEN)
    tab.click("#login-button")
    tab.locator("#login-error", has_text="manager").wait_for()
    tab.screenshot(path=str(SCREENSHOTS / "1-staff-refused.png"))
    tab.context.clear_cookies()
    tab.goto(f"{day.shop.live.url}{VIEW}?from={DAY}&to={DAY}")
    tab.fill("#token", MANAGER_TOKEN)
    tab.click("#login-button")
    tab.locator("body[data-funnel='ready']").wait_for(timeout=10_000)
    tab.locator("#customers tr[data-user]").first.wait_for(timeout=10_000)

    totals = [tab.locator(f'#total .step[data-step="{s}"] .value').inner_text()
              for s in ("visit", "follow", "claim", "member", "repeat")]
    assert totals == ["6", "2", "2", "2", "1"]
    rows = {r.get_attribute("data-key"): r.locator("td").all_inner_texts()
            for r in tab.locator("#channel-table tr[data-key]").all()}
    assert rows == {"poster": ["poster", "2", "1", "1", "0", "0"],
                    "table-sticker": ["table-sticker", "2", "1", "1", "2", "1"],
                    "": ["直接访问", "2", "0", "0", "0", "0"]}
    entry = {r.get_attribute("data-key"): r.locator("td").all_inner_texts()
             for r in tab.locator("#entry-table tr[data-key]").all()}
    assert entry["table-12"] == ["12 号桌贴", "2", "1", "1", "2", "1"]
    # Both charts hold the day's numbers and painted pixels on their canvases.
    for canvas in ("channel-chart", "entry-chart"):
        drawn = tab.evaluate("""(id) => {
            const canvas = document.getElementById(id);
            const chart = Chart.getChart(canvas);
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
            return {labels: chart.data.labels, data: chart.data.datasets.map(d => d.data), painted: painted,
                    width: canvas.width};
        }""", canvas)
        assert drawn["width"] > 200 and drawn["painted"] > 2000, drawn
        if canvas == "channel-chart":
            assert drawn["labels"] == ["poster", "table-sticker", "直接访问"]
            assert drawn["data"] == [[2, 2, 2], [1, 1, 0], [1, 1, 0], [0, 2, 0], [0, 1, 0]]
    ann = tab.locator(f'#customers tr[data-user="{day.users["ann"].id}"]').locator("td").all_inner_texts()
    assert ann[1:5] == ["会员", "银卡", "80", "2"] and "全部会员" in ann[6] and "常客" in ann[6]
    assert tab.locator("#customer-count").inner_text() == "共 6 人"
    assert tab.locator('.segment[data-id="members"] .size').inner_text() == "3"
    tab.screenshot(path=str(SCREENSHOTS / "2-funnel-and-customers.png"), full_page=True)

    tab.locator('.segment[data-id="members"] button.push').click()
    tab.locator('.segment[data-id="members"] .result', has_text="已创建人群").wait_for(timeout=10_000)
    result = tab.locator('.segment[data-id="members"] .result').inner_text()
    assert "新增 2 人" in result and "1 人无法推送" in result
    with tab.expect_download() as download:
        tab.locator('.segment[data-id="members"] a.export').click()
    assert download.value.suggested_filename == f"segment-members-{DAY}.csv"
    tab.locator('#segments-panel').screenshot(path=str(SCREENSHOTS / "3-segment-pushed.png"))
    tab.set_viewport_size({"width": 768, "height": 1024})
    tab.mouse.wheel(0, -10_000)  # back to the top: the sticky bar is drawn where the view is
    tab.locator(".topbar").scroll_into_view_if_needed()
    tab.screenshot(path=str(SCREENSHOTS / "4-tablet.png"), full_page=True)
    assert violations == [] and tab.errors == []
