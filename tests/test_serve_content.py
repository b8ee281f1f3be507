"""The back end's runtime content, on SQLite and on PostgreSQL: GET content with stock
(soldOut) and its ETag, content versions published, listed and restored with the app's
publish token, what is refused (auth, bodies) with nothing stored, and `mpforge publish`
against the app on a live uvicorn.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from serve_support import APPID, OTHER_APPID, PUBLISH_TOKEN, SECRET, LiveServer, Served, coupon, write_spec

from builder.errors import UserError
from builder.serve.app import create_app
from builder.serve.merchant import AlipayConfig, load_merchant
from builder.serve.publish import versions_url
from builder.serve.storage import CONTENT_VERSIONS

pytest_plugins = ["serve_fixtures"]  # database, postgres, serve

TOKEN_VARIABLE = f"MPFORGE_PUBLISH_TOKEN_{APPID}"
PUBLISHER = {"Authorization": f"Bearer {PUBLISH_TOKEN}"}
CONTENT = f"/api/v1/{APPID}/content"
VERSIONS = f"/api/v1/{APPID}/content/versions"
COUPONS = (coupon("welcome", terms="每人一张"), coupon("spring", validity={"start": "2026-02-01", "end": "2026-03-31"}),
           coupon("vip", stock=1))


@pytest.fixture
def publishing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server (started after this) and `mpforge publish` share the app's token."""
    monkeypatch.setenv(TOKEN_VARIABLE, PUBLISH_TOKEN)


def words(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["id"], c["title"]) for c in document["coupons"]]


def a_document(served: Served) -> dict[str, Any]:
    """A content document as `mpforge publish` would send: the spec's, changed."""
    return {"name": "Spring Shop", "coupons": [
        {"id": "spring", "title": "春季 8 折", "valueText": "8折", "thresholdText": "满100元可用",
         "validityText": "3月内有效", "terms": None},
        {"id": "welcome", "title": "新人 5 元", "valueText": "¥5", "thresholdText": "无门槛",
         "validityText": "领取后7天内有效", "terms": "每人一张"},
    ]}


def test_content_says_whether_stock_is_left_and_its_etag_follows_the_stock(serve: Callable[..., Served]) -> None:
    served = serve(COUPONS)
    first = served.api.get(CONTENT)
    assert first.json()["version"] == 0
    assert [(c["id"], c["soldOut"]) for c in first.json()["coupons"]] == [("welcome", False), ("spring", False),
                                                                         ("vip", False)]
    etag = first.headers["etag"]
    assert served.api.get(CONTENT, headers={"If-None-Match": etag}).status_code == 304
    assert served.claim(served.login("7"), "vip").status_code == 201  # the last one
    after = served.api.get(CONTENT, headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag
    assert [c["soldOut"] for c in after.json()["coupons"]] == [False, False, True]
    assert after.headers["cache-control"] == "public, max-age=60"  # a minute at most, never for good


def test_publish_show_list_and_restore_content_versions(serve: Callable[..., Served], publishing: None) -> None:
    served = serve(COUPONS)
    spec_content = served.api.get(CONTENT)
    published = served.api.post(VERSIONS, headers=PUBLISHER, json=a_document(served))
    assert published.status_code == 201, published.text
    assert published.json() == {"version": 1, "publishedAt": "2026-03-02T04:00:00Z", "restoredFrom": None}
    shown = served.api.get(CONTENT, headers={"If-None-Match": spec_content.headers["etag"]})
    assert shown.status_code == 200 and shown.json()["version"] == 1
    content = shown.json()
    # The published words and order; the vip coupon left out is not shown.
    assert (content["name"], words(content)) == ("Spring Shop", [("spring", "春季 8 折"), ("welcome", "新人 5 元")])
    spring = content["coupons"][0]
    assert (spring["valueText"], spring["validityText"], spring["terms"]) == ("8折", "3月内有效", None)
    # What the server enforces stays the spec's.
    assert (spring["kind"], spring["end"], spring["activityId"], spring["state"], spring["soldOut"]) == (
        "cash", "2026-03-31", "act-spring", "available", False)
    assert served.claim(served.login("7"), "vip").status_code == 201  # hidden, still claimable
    # The words of "my coupons" are the shown content's.
    mine = served.api.get(f"/api/v1/{APPID}/me/claims", headers={"Authorization": f"Bearer {served.login('7')}"})
    assert mine.json()["claims"][0]["title"] == "vip 5 元"  # not in the document: the spec's words
    served.claim(served.login("7"), "welcome", key="k2")
    mine = served.api.get(f"/api/v1/{APPID}/me/claims", headers={"Authorization": f"Bearer {served.login('7')}"})
    assert mine.json()["claims"][0]["title"] == "新人 5 元"

    second = a_document(served) | {"name": "Summer Shop"}
    assert served.api.post(VERSIONS, headers=PUBLISHER, json=second).json()["version"] == 2
    assert served.api.get(CONTENT).json()["name"] == "Summer Shop"
    restored = served.api.post(f"{VERSIONS}/1/restore", headers=PUBLISHER)
    assert restored.status_code == 201 and restored.json()["version"] == 3 and restored.json()["restoredFrom"] == 1
    assert (served.api.get(CONTENT).json()["version"], served.api.get(CONTENT).json()["name"]) == (3, "Spring Shop")
    to_spec = served.api.post(f"{VERSIONS}/0/restore", headers=PUBLISHER).json()
    assert (to_spec["version"], to_spec["restoredFrom"]) == (4, 0)
    again = served.api.get(CONTENT).json()
    assert again["version"] == 4 and again["coupons"] == spec_content.json()["coupons"][:2] + [
        {**spec_content.json()["coupons"][2], "soldOut": True}]
    listed = served.api.get(VERSIONS, headers=PUBLISHER)
    assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
    assert listed.json()["current"] == 4
    assert [(v["version"], v["restoredFrom"]) for v in listed.json()["versions"]] == [(1, None), (2, None), (3, 1),
                                                                                     (4, 0)]
    assert [r["appid"] for r in served.rows(CONTENT_VERSIONS)] == [APPID] * 4


def test_a_coupon_the_spec_dropped_is_neither_shown_nor_listed(serve: Callable[..., Served],
                                                               publishing: None) -> None:
    """The server restarted with a spec without the spring coupon, on the same database."""
    before = serve(COUPONS)
    assert before.api.post(VERSIONS, headers=PUBLISHER, json=a_document(before)).status_code == 201
    assert before.claim(before.login("7"), "spring").status_code == 201
    after = serve((COUPONS[0],))
    content = after.api.get(CONTENT).json()
    assert (content["version"], words(content)) == (1, [("welcome", "新人 5 元")])
    mine = after.api.get(f"/api/v1/{APPID}/me/claims", headers={"Authorization": f"Bearer {after.login('7')}"})
    assert mine.json() == {"claims": []}


def test_publishing_needs_the_apps_token(serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"MPFORGE_PUBLISH_TOKEN_{OTHER_APPID}", "another-token-for-the-other-app-0123456789")
    served = serve(COUPONS, other_app=True)  # no token for APPID: its publishing is disabled
    for method, path in [("GET", VERSIONS), ("POST", VERSIONS), ("POST", f"{VERSIONS}/0/restore")]:
        disabled = served.api.request(method, path, headers=PUBLISHER, json=a_document(served))
        assert disabled.status_code == 403 and disabled.json()["error"]["code"] == "publishing_disabled"
        assert TOKEN_VARIABLE in disabled.json()["error"]["message"]
    other_versions = f"/api/v1/{OTHER_APPID}/content/versions"
    wrong = [{}, PUBLISHER, {"Authorization": "Bearer another-token-for-the-other-app-012345678"},
             {"Authorization": "Basic another-token-for-the-other-app-0123456789"},
             {"Authorization": f"Bearer {served.login('7', appid=OTHER_APPID)}"},  # a user's session is no publisher
             {"Authorization": "Bearer another-token-for-the-other-app-0123456789é".encode("latin-1")}]
    for headers in wrong:
        refused = served.api.post(other_versions, headers=headers, json=a_document(served))
        assert refused.status_code == 401, headers
        assert refused.json()["error"]["code"] == "unauthorized" and refused.headers["www-authenticate"] == "Bearer"
        assert f"MPFORGE_PUBLISH_TOKEN_{OTHER_APPID}" in refused.json()["error"]["message"]
    assert served.rows(CONTENT_VERSIONS) == []
    allowed = served.api.post(other_versions, headers={
        "Authorization": "Bearer another-token-for-the-other-app-0123456789"}, json=a_document(served))
    assert allowed.status_code == 201
    assert served.api.get(f"/api/v1/{OTHER_APPID}/content").json()["version"] == 1
    assert served.api.get(CONTENT).json()["version"] == 0  # one app's versions are its own


def test_bad_content_is_refused_located_and_nothing_is_stored(serve: Callable[..., Served],
                                                              publishing: None) -> None:
    served = serve(COUPONS)
    good = a_document(served)
    unknown = {**good, "coupons": [*good["coupons"], {**good["coupons"][0], "id": "autumn"}]}
    twice = {**good, "coupons": [good["coupons"][1], good["coupons"][1]]}
    snake_case = {"value_text" if name == "valueText" else name: value for name, value in good["coupons"][0].items()}
    cases: list[tuple[Any, int, str, list[str]]] = [
        (b"{not json", 400, "invalid_json", []),
        (None, 422, "invalid_body", ["(body)"]),
        ({}, 422, "invalid_body", ["name", "coupons"]),
        ({**good, "name": ""}, 422, "invalid_body", ["name"]),
        ({**good, "extra": 1}, 422, "invalid_body", ["extra"]),
        ({**good, "coupons": [snake_case]}, 422, "invalid_body", ["coupons.0.valueText", "coupons.0.value_text"]),
        ({**good, "coupons": [{**good["coupons"][0], "id": "Bad Id"}]}, 422, "invalid_body", ["coupons.0.id"]),
        ({**good, "coupons": [{**good["coupons"][0], "title": "x" * 81}]}, 422, "invalid_body",
         ["coupons.0.title"]),
        (unknown, 422, "invalid_body", ["coupons.2.id"]),
        (twice, 422, "invalid_body", ["coupons.1.id"]),
        (b"x" * (1024 * 1024 + 1), 413, "body_too_large", []),
    ]
    for body, status, code, locations in cases:
        request: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        refused = served.api.post(VERSIONS, headers=PUBLISHER, **request)
        assert (refused.status_code, refused.json()["error"]["code"]) == (status, code), body
        assert [f["location"] for f in refused.json()["error"].get("fields") or []] == locations, body
    message = served.api.post(VERSIONS, headers=PUBLISHER, json=unknown).json()["error"]["fields"][0]["message"]
    assert "'autumn'" in message and "welcome, spring, vip" in message
    for version in ("1", "-1", "x", "99999999999"):
        missing = served.api.post(f"{VERSIONS}/{version}/restore", headers=PUBLISHER)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_version", version
    assert served.rows(CONTENT_VERSIONS) == []
    assert served.api.get(CONTENT).json()["version"] == 0


def test_versions_published_at_once_get_one_number_each(serve: Callable[..., Served], publishing: None) -> None:
    served = serve(COUPONS)
    documents = [a_document(served) | {"name": f"Shop {n}"} for n in range(12)]
    answers = served.api.gather([("POST", VERSIONS, {"headers": PUBLISHER, "json": d}) for d in documents])
    assert sorted(a.json()["version"] for a in answers) == list(range(1, 13))
    by_version = {a.json()["version"]: d["name"] for a, d in zip(answers, documents, strict=True)}
    assert served.api.get(CONTENT).json()["name"] == by_version[12]


def test_a_publish_token_too_short_stops_the_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, "short")
    merchant = load_merchant(write_spec(tmp_path / "shop", [coupon("welcome")]))
    with pytest.raises(UserError, match=f"{TOKEN_VARIABLE} has 5 characters; a publish token needs at least 32"):
        create_app([merchant], f"sqlite:///{tmp_path / 'db.sqlite3'}", alipay=AlipayConfig(), secret=SECRET)


# --- mpforge publish -------------------------------------------------------------------------------

def test_mpforge_publish_sends_the_specs_content_lists_and_restores(
        serve: Callable[..., Served], publishing: None, cli: Callable[..., Any], tmp_path: Path) -> None:
    served = serve(COUPONS)
    spec = served.app.state.api.merchants[APPID].spec_path
    spec_content = served.api.get(CONTENT).json()
    with LiveServer(served.app) as server:
        first = cli("publish", spec.parent, "--to", server.url)
        assert first.exit_code == 0, first.output
        assert first.output == f"app {APPID}: content version 1 published, shown now\n"
        # The spec's own content, built by the function GET content uses for version 0.
        content = served.api.get(CONTENT).json()
        assert content == {**spec_content, "version": 1}
        spec.write_text(spec.read_text("utf-8").replace("welcome 5 元", "欢迎礼 5 元"), "utf-8")
        assert cli("publish", spec, "--to", server.url + "/").exit_code == 0
        assert words(served.api.get(CONTENT).json())[0] == ("welcome", "欢迎礼 5 元")
        restored = cli("publish", spec, "--to", server.url, "--restore", "1")
        assert restored.output == f"app {APPID}: version 1 restored as version 3, shown now\n"
        assert words(served.api.get(CONTENT).json())[0] == ("welcome", "welcome 5 元")
        listed = cli("publish", spec, "--to", server.url, "--list")
        assert listed.exit_code == 0
        lines = listed.output.splitlines()
        assert lines[0] == f"app {APPID}: content versions ({server.url}{VERSIONS})"
        assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3"]
        assert lines[3].endswith("2026-03-02T04:00:00+00:00, restored from 1  <- shown")


def test_mpforge_publish_says_what_went_wrong(serve: Callable[..., Served], publishing: None,
                                             cli: Callable[..., Any], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    served = serve(COUPONS)
    spec = served.app.state.api.merchants[APPID].spec_path
    bigger = write_spec(tmp_path / "bigger", [*COUPONS, coupon("autumn")])
    other_app = write_spec(tmp_path / "other", COUPONS, OTHER_APPID)
    monkeypatch.setenv(f"MPFORGE_PUBLISH_TOKEN_{OTHER_APPID}", PUBLISH_TOKEN)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with LiveServer(served.app) as server:
        cases = [
            ((spec, "--to", "http://shop.example.com"), "http would send the publish token unencrypted"),
            ((spec, "--to", "ftp://shop.example.com"), "expected the server's base URL"),
            ((spec, "--to", "https://"), "has no host"),
            ((spec, "--to", "https://shop.example.com:99999"), "is not a URL"),
            ((spec, "--to", "https://shop.example.com?x=1"), "no query"),
            ((spec, "--to", closed), "could not reach the server"),
            ((spec, "--to", server.url + "/api/v1"), "is --to the server's base URL, without /api/v1/...?"),
            ((other_app, "--to", server.url), "the server does not serve this spec's app id"),
            ((bigger, "--to", server.url), "content.coupons.3.id: no coupon 'autumn' in the spec this server serves"),
            ((spec, "--to", server.url, "--restore", "7"), "(404 unknown_version)"),
            ((spec, "--to", server.url, "--restore", "1", "--list"), "give --restore N or --list, not both"),
        ]
        for args, expected in cases:
            result = cli("publish", *args)
            assert result.exit_code == 1 and expected in result.output, (args, result.output)
        monkeypatch.setenv(TOKEN_VARIABLE, "x" * 40)
        refused = cli("publish", spec, "--to", server.url)
        assert refused.exit_code == 1 and "the server refused (401 unauthorized)" in refused.output
        assert PUBLISH_TOKEN not in refused.output and "x" * 40 not in refused.output
        monkeypatch.delenv(TOKEN_VARIABLE)
        missing = cli("publish", spec, "--to", server.url)
        assert missing.exit_code == 1 and f"{TOKEN_VARIABLE} is not set" in missing.output
    assert served.rows(CONTENT_VERSIONS) == []


def test_only_https_or_this_machine_gets_the_token() -> None:
    assert versions_url("https://api.example.com", APPID) == f"https://api.example.com/api/v1/{APPID}/content/versions"
    assert versions_url("https://example.com/shop/", APPID) == f"https://example.com/shop/api/v1/{APPID}/content/versions"
    for local in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"):
        assert versions_url(local, APPID).startswith(local + "/api/v1/")
    for refused in ("http://10.0.0.1", "http://127.0.0.1.example.com", "api.example.com", "https://u:p@example.com",
                    "https://example.com#x"):
        with pytest.raises(UserError):
            versions_url(refused, APPID)


def test_product_prices_in_a_document_are_checked_against_the_catalogue(tmp_path: Path) -> None:
    from builder.serve.api_models import ContentDocument
    from builder.serve.content import document_problems, render, spec_document
    from builder.serve.merchant import Merchant
    from builder.spec_models import Catalogue

    catalogue = Catalogue.model_validate({"categories": [{"id": "coffee", "name": "咖啡"}], "products": [
        {"id": "latte", "name": "拿铁", "category": "coffee", "price": 28, "original_price": 32}]})
    merchant = Merchant(appid=APPID, name="Shop", spec_path=tmp_path / "mpforge.yaml",
                        products=tuple(catalogue.products))
    own = spec_document(merchant)
    assert own.model_dump(mode="json", by_alias=True)["products"] == [
        {"id": "latte", "name": "拿铁", "price": "28", "originalPrice": "32", "soldOut": False}]
    shown = render(merchant, own, 0, date(2026, 3, 3), {}).model_dump(mode="json", by_alias=True)["products"]
    assert shown == [{"id": "latte", "name": "拿铁", "priceText": "¥28.00", "originalPriceText": "¥32.00",
                      "soldOut": False}]
    changed = ContentDocument.model_validate({"name": "Shop", "coupons": [], "products": [
        {"id": "latte", "name": "拿铁", "price": "26"}, {"id": "tea", "name": "茶", "price": "9"},
        {"id": "latte", "name": "拿铁", "price": "25"}]})
    assert [(p.location, p.message.split(";")[0]) for p in document_problems(merchant, changed)] == [
        ("products.1.id", "no product 'tea' in the catalogue of the spec this server serves"),
        ("products.2.id", "product 'latte' is listed twice")]
    with pytest.raises(ValueError, match="originalPrice must be higher than price"):
        ContentDocument.model_validate({"name": "Shop", "coupons": [], "products": [
            {"id": "latte", "name": "拿铁", "price": "26", "originalPrice": "20"}]})
