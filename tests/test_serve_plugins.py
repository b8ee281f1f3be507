"""The back end's plugin hooks: a plugin adds routes (described in the OpenAPI document),
tables through its own Alembic branch (on SQLite and PostgreSQL, applied once), periodic
tasks on the job queue, sandbox methods and sandbox routes; the first-party plugins
serve theirs through the same hooks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from Crypto.PublicKey import RSA
from helpers import REPO
from serve_support import APPID, SECRET, ApiClient, Database
from sqlalchemy import inspect, text
from starlette.applications import Starlette

from builder.errors import PluginError, UserError
from builder.hooks import Hooks
from builder.options import PluginOptions
from builder.pipeline import load_plugins
from builder.serve import rsa2
from builder.serve.app import create_app
from builder.serve.business_events import BusinessEvent
from builder.serve.merchant import AlipayConfig
from builder.serve.sandbox import TIMESTAMP_FORMAT, create_sandbox_app
from builder.serve.sandbox_keys import generate_key_pair
from builder.serve.sandbox_state import SandboxState
from builder.serve.storage import AlipayUser, Storage

pytest_plugins = ["serve_fixtures"]  # database, postgres, serve

# A plugin implementing every back-end hook (tests/test_plugins.py checks that it does).
STAMP_PLUGIN = '''
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import text
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from builder.plugin_api import hookimpl
from builder.serve.plugin_api import (
    ERROR, PREFIX, Endpoint, Operation, PeriodicTask, biz_content, reply, serve_api, succeeded, text_field,
)

PLUGIN_NAME = "stamps"
RAISE_IN = None


def _maybe_raise(hook):
    if hook == RAISE_IN:
        raise RuntimeError("stamp machine jammed")


class StampCards(BaseModel):
    appid: str
    cards: int


async def count_cards(request):
    api = serve_api(request)
    appid = request.path_params["appid"]
    with api.storage.engine.connect() as conn:
        cards = conn.execute(text("SELECT count(*) FROM stamp_cards WHERE appid = :appid"),
                             {"appid": appid}).scalar_one()
    return reply(200, StampCards(appid=appid, cards=cards))


CARDS = Operation("countStampCards", "METHOD", f"{PREFIX}ROUTE", "How many stamp cards the app has",
                  responses={200: ("the count", (StampCards,)), 404: ("unknown app id", ERROR)})


@hookimpl
def mpforge_serve_migrations():
    _maybe_raise("mpforge_serve_migrations")
    return [Path(__file__).parent / "stamp_versions"]


@hookimpl
def mpforge_serve_routes():
    _maybe_raise("mpforge_serve_routes")
    return [Endpoint(CARDS, count_cards)]


def tally(context):
    """Counts its runs in the stamp_cards row of app id 'tally'."""
    with context.storage.engine.begin() as conn:
        conn.execute(text("INSERT INTO stamp_cards (appid, cups) VALUES ('tally', 1) "
                          "ON CONFLICT (appid) DO UPDATE SET cups = stamp_cards.cups + 1"))


@hookimpl
def mpforge_serve_tasks():
    _maybe_raise("mpforge_serve_tasks")
    return [PeriodicTask("stamps.tally", tally)]


@hookimpl
def mpforge_serve_sold_out(storage, appid, products):
    _maybe_raise("mpforge_serve_sold_out")
    return []


@hookimpl
def mpforge_serve_event(context, event):
    """A paid order is a stamp: cups of the row named by the user's id."""
    _maybe_raise("mpforge_serve_event")
    if event.kind == "order_paid":
        with context.storage.engine.begin() as conn:
            conn.execute(text("INSERT INTO stamp_cards (appid, cups) VALUES (:who, 1) "
                              "ON CONFLICT (appid) DO UPDATE SET cups = stamp_cards.cups + 1"), {"who": event.user.id})


def _cups(storage, user):
    with storage.engine.connect() as conn:
        return conn.execute(text("SELECT cups FROM stamp_cards WHERE appid = :who"), {"who": user.id}).scalar()


@hookimpl
def mpforge_serve_in_audience(storage, appid, user, audience):
    _maybe_raise("mpforge_serve_in_audience")
    if audience != "segment:stamp-holders":
        return None
    return bool(_cups(storage, user))


@hookimpl
def mpforge_serve_user_data(storage, appid, user):
    _maybe_raise("mpforge_serve_user_data")
    return {"stamps": {"cups": _cups(storage, user) or 0}}


@hookimpl
def mpforge_serve_forget_user(storage, appid, user):
    _maybe_raise("mpforge_serve_forget_user")
    with storage.engine.begin() as conn:
        conn.execute(text("DELETE FROM stamp_cards WHERE appid = :who"), {"who": user.id})


def stamp_card_query(state, app_id, params):
    return succeeded(card=text_field(biz_content(params), "card"), app=app_id)


@hookimpl
def mpforge_sandbox_methods():
    _maybe_raise("mpforge_sandbox_methods")
    return {"alipay.stamp.card.query": stamp_card_query}


async def ping(request):
    return PlainTextResponse(f"stamps, tolerance {request.app.state.sandbox.timestamp_tolerance.seconds}s")


@hookimpl
def mpforge_sandbox_routes():
    _maybe_raise("mpforge_sandbox_routes")
    return [Route("/stamps/ping", ping, methods=["GET"])]


async def stamp_page(request):
    return HTMLResponse(f"<p>stamp cards of {serve_api(request).merchants.get(request.path_params['appid'])}</p>")


@hookimpl
def mpforge_serve_pages():
    _maybe_raise("mpforge_serve_pages")
    return [Route("PAGE", stamp_page, methods=["GET"])]
'''

# The plugin's own branch: a root revision labelled with the plugin's name, after the core's first.
STAMP_REVISION = '''
"""Stamp cards.

Revision ID: stamps01
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "stamps01"
down_revision = None
branch_labels = ("stamps",)
depends_on = "0001"


def upgrade():
    op.create_table("stamp_cards",
                    sa.Column("appid", sa.String(16), nullable=False),
                    sa.Column("cups", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("appid", name="pk_stamp_cards"))
'''


def stamp_plugin(folder: Path, *, method: str = "GET", path: str = "/stamps", raise_in: str | None = None,
                 page: str = "/stamps/{appid}/card") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stamp_versions").mkdir(exist_ok=True)
    (folder / "stamp_versions/stamps01_stamp_cards.py").write_text(STAMP_REVISION, "utf-8")
    plugin = folder / "stamp_plugin.py"
    source = STAMP_PLUGIN.replace('"METHOD"', repr(method)).replace("ROUTE", path).replace('"PAGE"', repr(page))
    plugin.write_text(source.replace("RAISE_IN = None", f"RAISE_IN = {raise_in!r}"), "utf-8")
    return plugin


# The ordering plugin has an Alembic branch of its own: left out, the stamp plugin's is the only one.
def with_plugin(plugin: Path, disabled: tuple[str, ...] = ("ordering", "membership")) -> Hooks:
    return load_plugins(PluginOptions(extra=(str(plugin),), disabled=disabled))


@contextmanager
def http(app: Starlette) -> Iterator[ApiClient]:
    api = ApiClient(app)
    try:
        yield api
    finally:
        api.close()


def versions(storage: Storage) -> list[str]:
    with storage.engine.connect() as conn:
        return sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


# --- tables: the plugin's own Alembic branch --------------------------------------------

def test_a_plugins_revisions_add_its_table_once(database: Database, tmp_path: Path) -> None:
    folder = with_plugin(stamp_plugin(tmp_path / "plugin")).serve_migrations()
    assert [(plugin, path.name) for plugin, path in folder] == [("stamps", "stamp_versions")]
    storage = Storage(database.url)
    try:
        storage.migrate()  # a database in use: the core's revisions only
        assert versions(storage) == ["0003"]
        assert "stamp_cards" not in inspect(storage.engine).get_table_names()
        storage.migrate([path for _, path in folder])  # then the plugin is installed
        assert versions(storage) == ["0003", "stamps01"]
        with storage.engine.begin() as conn:
            conn.execute(text("INSERT INTO stamp_cards (appid, cups) VALUES (:appid, 3)"), {"appid": APPID})
        # A second start-up applies nothing twice: create_table again would fail, and the row stays.
        storage.migrate([path for _, path in folder])
        assert versions(storage) == ["0003", "stamps01"]
        with storage.engine.connect() as conn:
            assert conn.execute(text("SELECT appid, cups FROM stamp_cards")).all() == [(APPID, 3)]
    finally:
        storage.dispose()


def test_an_empty_database_gets_the_cores_tables_and_the_plugins_at_once(database: Database,
                                                                         tmp_path: Path) -> None:
    plugins = with_plugin(stamp_plugin(tmp_path / "plugin"))
    app = create_app([], database.url, alipay=AlipayConfig(), secret=SECRET, plugins=plugins)
    storage: Storage = app.state.api.storage
    try:
        assert versions(storage) == ["0003", "stamps01"]
        assert {"claims", "coupon_counters", "events", "content_versions", "stamp_cards"} <= set(
            inspect(storage.engine).get_table_names())
    finally:
        storage.dispose()
    again = create_app([], database.url, alipay=AlipayConfig(), secret=SECRET, plugins=plugins)
    again.state.api.storage.dispose()


def test_a_database_migrated_with_a_plugin_that_is_gone_is_a_user_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    storage = Storage(url)
    try:
        storage.migrate([path for _, path in with_plugin(stamp_plugin(tmp_path / "plugin")).serve_migrations()])
        with pytest.raises(UserError, match="cannot be upgraded: Can't locate revision identified by 'stamps01'"
                                            ".*a plugin whose tables this database holds may be missing"):
            storage.migrate()
    finally:
        storage.dispose()


# --- routes: served and described ---------------------------------------------------------

def test_a_plugins_route_is_served_and_described(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    app = create_app([], url, alipay=AlipayConfig(), secret=SECRET, plugins=with_plugin(stamp_plugin(tmp_path)))
    storage: Storage = app.state.api.storage
    try:
        with storage.engine.begin() as conn:
            conn.execute(text("INSERT INTO stamp_cards (appid, cups) VALUES (:appid, 3)"), {"appid": APPID})
        with http(app) as api:
            answer = api.get(f"/api/v1/{APPID}/stamps")
            assert (answer.status_code, answer.json()) == (200, {"appid": APPID, "cards": 1})
            assert answer.headers["cache-control"] == "no-store"  # the core's reply()
            page = api.get(f"/stamps/{APPID}/card")  # mpforge_serve_pages: outside the API, not in OpenAPI
            assert (page.status_code, page.text) == (200, "<p>stamp cards of None</p>")
            document = api.get("/api/v1/openapi.json").json()
    finally:
        storage.dispose()
    operation = document["paths"]["/api/v1/{appid}/stamps"]["get"]
    assert operation["operationId"] == "countStampCards"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StampCards"}
    assert "StampCards" in document["components"]["schemas"]
    assert "/stamps/{appid}/card" not in document["paths"]
    # The first-party plugins' routes are there too, beside the core's.
    names = {op["operationId"] for path in document["paths"].values() for op in path.values()}
    assert {"claimCoupon", "listMyClaims", "recordEvents", "createSession", "getContent"} <= names


def test_the_first_party_routes_come_from_their_plugins(tmp_path: Path) -> None:
    """Disabled, the first-party plugins take their routes with them: the router
    knows no such path (not_found), where a served route knows no such app (unknown_app)."""
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    plugins = load_plugins(PluginOptions(disabled=("coupon", "promotion", "life_account", "ordering", "membership")))
    app = create_app([], url, alipay=AlipayConfig(), secret=SECRET, plugins=plugins)
    try:
        with http(app) as client:
            codes = [client.request(method, f"/api/v1/{APPID}{path}").json()["error"]["code"] for method, path in
                     [("POST", "/coupons/welcome/claims"), ("GET", "/me/claims"), ("POST", "/events"),
                      ("POST", "/orders"), ("GET", "/content")]]
            paths = client.get("/api/v1/openapi.json").json()["paths"]
    finally:
        app.state.api.storage.dispose()
    assert codes == ["not_found", "not_found", "not_found", "not_found", "unknown_app"]
    assert sorted(paths) == ["/api/v1/openapi.json", "/api/v1/{appid}/content", "/api/v1/{appid}/content/versions",
                             "/api/v1/{appid}/content/versions/{version}/restore", "/api/v1/{appid}/me/data",
                             "/api/v1/{appid}/session"]


def test_a_plugin_route_that_takes_a_core_route_is_refused(tmp_path: Path) -> None:
    plugins = with_plugin(stamp_plugin(tmp_path, method="POST", path="/session"))
    with pytest.raises(UserError, match=r"plugin 'stamps' adds the route countStampCards \(POST "
                                        r"/api/v1/\{appid\}/session\), which takes the core's createSession"):
        create_app([], f"sqlite:///{tmp_path / 'db.sqlite3'}", alipay=AlipayConfig(), secret=SECRET, plugins=plugins)


def test_a_plugin_page_under_the_api_is_refused(tmp_path: Path) -> None:
    plugins = with_plugin(stamp_plugin(tmp_path, page="/api/v1/{appid}/card"))
    with pytest.raises(UserError, match=r"plugin 'stamps' adds the web page /api/v1/\{appid\}/card, under the API's "
                                        r"/api/"):
        create_app([], f"sqlite:///{tmp_path / 'db.sqlite3'}", alipay=AlipayConfig(), secret=SECRET, plugins=plugins)


def test_two_plugins_adding_one_route_are_named(tmp_path: Path) -> None:
    first = stamp_plugin(tmp_path / "a")
    second = tmp_path / "b/other_plugin.py"
    second.parent.mkdir()
    second.write_text(first.read_text().replace('PLUGIN_NAME = "stamps"', 'PLUGIN_NAME = "other"'), "utf-8")
    plugins = load_plugins(PluginOptions(extra=(str(first), str(second))))
    with pytest.raises(UserError, match=r"route 'GET /api/v1/\{appid\}/stamps' is defined by both plugin 'other' "
                                        r"\(.*other_plugin.py\) and plugin 'stamps'"):
        plugins.serve_endpoints()


def test_a_plugins_periodic_task_runs_on_the_job_queue(tmp_path: Path) -> None:
    """At start-up (the latest tick of its cron, every minute) in the serve process's
    worker, with no request."""
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    app = create_app([], url, alipay=AlipayConfig(), secret=SECRET, plugins=with_plugin(stamp_plugin(tmp_path)))
    storage: Storage = app.state.api.storage
    assert [task.name for task in app.state.api.jobs.tasks] == ["mpforge.task.stamps.tally"]

    def runs() -> int:
        with storage.engine.connect() as conn:
            return int(conn.execute(text("SELECT coalesce(sum(cups), 0) FROM stamp_cards")).scalar_one())

    try:
        with http(app) as api, api.lifespan():
            deadline = time.monotonic() + 10
            while runs() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert runs() >= 1  # 2 if a minute began meanwhile
    finally:
        storage.dispose()


def test_two_plugins_adding_one_periodic_task_are_named(tmp_path: Path) -> None:
    first = stamp_plugin(tmp_path / "a")
    second = tmp_path / "b/other_plugin.py"
    second.parent.mkdir()
    second.write_text(first.read_text().replace('PLUGIN_NAME = "stamps"', 'PLUGIN_NAME = "other"'), "utf-8")
    plugins = load_plugins(PluginOptions(extra=(str(first), str(second))))
    with pytest.raises(UserError, match=r"periodic task 'stamps.tally' is defined by both plugin 'other' "
                                        r"\(.*other_plugin.py\) and plugin 'stamps'"):
        plugins.serve_tasks()


def test_plugins_hear_events_answer_audiences_and_keep_and_forget_a_users_data(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    app = create_app([], url, alipay=AlipayConfig(), secret=SECRET, plugins=with_plugin(stamp_plugin(tmp_path)))
    api = app.state.api
    try:
        alice, bob = AlipayUser("user_id", "2088alice"), AlipayUser("user_id", "2088bob")
        paid = BusinessEvent(APPID, alice, "order_paid", "HC1", datetime(2026, 12, 1, tzinfo=UTC), 2800)
        api.announce(paid)
        api.announce(BusinessEvent(APPID, bob, "order_ready", "HC2", paid.at))  # not the plugin's kind
        assert api.plugins.serve_in_audience(api.storage, APPID, alice, "segment:stamp-holders", {}) is True
        assert api.plugins.serve_in_audience(api.storage, APPID, bob, "segment:stamp-holders", {}) is False
        assert api.plugins.serve_in_audience(api.storage, APPID, alice, "members", {}) is None  # no plugin knows it
        assert api.plugins.serve_user_data(api.storage, APPID, alice) == {"stamps": {"cups": 1}}
        api.plugins.serve_forget_user(api.storage, APPID, alice)
        api.plugins.serve_forget_user(api.storage, APPID, alice)  # twice is harmless
        assert api.plugins.serve_user_data(api.storage, APPID, alice) == {"stamps": {"cups": 0}}
    finally:
        api.storage.dispose()
    # A listener's failure is logged with the plugin's name and never reaches the announcer.
    failing = create_app([], f"sqlite:///{tmp_path / 'other.sqlite3'}", alipay=AlipayConfig(), secret=SECRET,
                         plugins=with_plugin(stamp_plugin(tmp_path / "f", raise_in="mpforge_serve_event")))
    try:
        failing.state.api.announce(paid)
    finally:
        failing.state.api.storage.dispose()
    assert "plugin 'stamps' failed on the event order_paid HC1 of app" in caplog.text
    assert "stamp machine jammed" in caplog.text


@pytest.mark.parametrize("hook", ["mpforge_serve_migrations", "mpforge_serve_routes", "mpforge_serve_pages",
                                  "mpforge_serve_tasks", "mpforge_serve_sold_out", "mpforge_sandbox_methods",
                                  "mpforge_sandbox_routes", "mpforge_serve_in_audience", "mpforge_serve_user_data",
                                  "mpforge_serve_forget_user"])
def test_a_serve_hook_failure_names_the_plugin(tmp_path: Path, hook: str) -> None:
    plugin = stamp_plugin(tmp_path, raise_in=hook)
    plugins = with_plugin(plugin)
    call = {"mpforge_serve_migrations": plugins.serve_migrations, "mpforge_serve_routes": plugins.serve_endpoints,
            "mpforge_serve_pages": plugins.serve_pages, "mpforge_serve_tasks": plugins.serve_tasks,
            "mpforge_serve_sold_out": lambda: plugins.serve_sold_out(None, APPID, []),
            "mpforge_sandbox_methods": plugins.sandbox_methods,
            "mpforge_sandbox_routes": plugins.sandbox_routes,
            "mpforge_serve_in_audience": lambda: plugins.serve_in_audience(None, APPID, None, "members", {}),
            "mpforge_serve_user_data": lambda: plugins.serve_user_data(None, APPID, None),
            "mpforge_serve_forget_user": lambda: plugins.serve_forget_user(None, APPID, None)}
    with pytest.raises(PluginError) as failure:
        call[hook]()
    assert f"plugin 'stamps' ({plugin}) failed in {hook}: RuntimeError: stamp machine jammed" in str(failure.value)


# --- the sandbox: methods and routes --------------------------------------------------------

def _signed(private_pem: str, state: SandboxState, method: str, biz: dict[str, str] | None = None,
            **fields: str) -> dict[str, str]:
    """A gateway request as the SDK signs it: biz_content JSON, or (oauth) fields of its own."""
    params = {"app_id": APPID, "method": method, "charset": "utf-8", "sign_type": "RSA2", "version": "1.0",
              "timestamp": state.clock().strftime(TIMESTAMP_FORMAT), **fields}
    if biz is not None:
        params["biz_content"] = json.dumps(biz)
    return {**params, "sign": rsa2.sign(RSA.import_key(private_pem), rsa2.request_sign_content(params))}


def test_the_sandbox_answers_a_plugins_methods_and_routes(tmp_path: Path) -> None:
    app_pair, alipay_pair, state = generate_key_pair(), generate_key_pair(), SandboxState()
    plugins = with_plugin(stamp_plugin(tmp_path))
    sandbox = create_sandbox_app({APPID: app_pair.public_pem}, alipay_pair.private_pem, state, plugins=plugins)
    with http(sandbox) as client:
        answer = client.post("/gateway.do", data=_signed(app_pair.private_pem, state, "alipay.stamp.card.query",
                                                         {"card": "classic"})).json()
        assert answer["alipay_stamp_card_query_response"] == {"code": "10000", "msg": "Success", "card": "classic",
                                                              "app": APPID}
        refused = client.post("/gateway.do", data=_signed(app_pair.private_pem, state, "alipay.stamp.card.query",
                                                          {})).json()["alipay_stamp_card_query_response"]
        assert (refused["code"], refused["sub_code"]) == ("40004", "INVALID_PARAMETER")
        assert client.get("/stamps/ping").text == "stamps, tolerance 900s"
        # The first-party plugins' methods are there too; with a bad signature none is answered.
        voucher = _signed(app_pair.private_pem, state, "alipay.marketing.activity.ordervoucher.send", {})
        assert client.post("/gateway.do", data=voucher).json()[
            "alipay_marketing_activity_ordervoucher_send_response"]["sub_code"] == "INVALID_PARAMETER"
        forged = {**_signed(app_pair.private_pem, state, "alipay.stamp.card.query", {"card": "x"}), "sign": "AAAA"}
        assert client.post("/gateway.do", data=forged).json()[
            "alipay_stamp_card_query_response"]["sub_code"] == "isv.invalid-signature"


def test_the_first_party_sandbox_methods_come_from_their_plugins(tmp_path: Path) -> None:
    app_pair, alipay_pair, state = generate_key_pair(), generate_key_pair(), SandboxState()
    plugins = load_plugins(PluginOptions(disabled=("coupon", "promotion", "life_account", "ordering", "membership")))
    sandbox = create_sandbox_app({APPID: app_pair.public_pem}, alipay_pair.private_pem, state, plugins=plugins)
    with http(sandbox) as client:
        for method in ("alipay.marketing.activity.ordervoucher.send", "alipay.open.public.user.follow.query",
                       "alipay.open.app.qrcode.create", "alipay.trade.create"):
            answer = client.post("/gateway.do", data=_signed(app_pair.private_pem, state, method, {})).json()
            assert answer[method.replace(".", "_") + "_response"]["sub_code"] == "isv.invalid-method"
        login = _signed(app_pair.private_pem, state, "alipay.system.oauth.token", code="sandbox-user-7",
                        grant_type="authorization_code")
        assert client.post("/gateway.do", data=login).json()["alipay_system_oauth_token_response"]["user_id"]
        assert client.get("/qrcode/x.png").status_code == 404  # the promotion plugin's route is gone


# --- builds never load the back end --------------------------------------------------------

def test_a_build_imports_nothing_of_the_back_end(tmp_path: Path) -> None:
    """The plugins' serve hooks import their serve.py when called: a build, which never
    calls them, loads no Starlette, SQLAlchemy nor builder.serve."""
    code = textwrap.dedent(f"""
        import sys
        from builder import api
        api.build({str(REPO / 'sample_projects/harbour-coffee')!r}, {str(tmp_path / 'out')!r})
        loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'sqlalchemy', 'alembic')
                        or m.startswith('builder.serve') or m.endswith('.serve'))
        print(loaded)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out/app.json").is_file()


def test_the_serve_tables_of_the_first_party_plugins_stay_the_cores(database: Database, tmp_path: Path) -> None:
    """claims, counters and events came with revision 0001, which databases in use have
    applied: no first-party plugin brings revisions of its own for them (ordering's
    branch holds its orders only, membership's its members)."""
    assert sorted((name, path.name) for name, path in load_plugins().serve_migrations()) == [
        ("membership", "versions"), ("ordering", "versions")]
    storage = Storage(database.url)
    try:
        storage.migrate()
        assert versions(storage) == ["0003"]
        assert {"claims", "coupon_counters", "events"} <= set(inspect(storage.engine).get_table_names())
    finally:
        storage.dispose()
