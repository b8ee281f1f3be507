"""The promotion plugin: QR codes that decode, the entry-point CSV, share, campaigns and
channel attribution run in Node, and every validation rule."""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
import subprocess
from datetime import datetime

import pytest
from helpers import SAMPLES

from builder.api import build
from builder.errors import UserError
from builder.pipeline import prepare
from builder.testing import page_spec

PROMO = {
    "share": {"desc": "Share desc", "pages": {"about": {"title": "About us"}}},
    "search_keywords": ["咖啡", "latte"],
    "campaigns": [{"id": "winter", "name": "冬日", "start": "2026-11-15T00:00:00+08:00",
                   "end": "2026-12-31T23:59:59+08:00", "banner": "banner.png", "landing": "about"}],
    "entry_points": [{"id": "table-12", "name": "Table 12", "kind": "table-sticker", "description": "Table 12 sticker",
                      "page": "about", "query": "store=main&table=12", "channel": "table-sticker", "store": "main"}],
}


def promo_spec(blocks=None, appid="2021004123456789", **changes):
    section = {**copy.deepcopy(PROMO), **changes}
    spec = page_spec(blocks if blocks is not None else [{"type": "campaign-banner", "campaign": "winter"},
                                                         {"type": "countdown", "campaign": "winter"}],
                     assets="assets", promotion=section)
    spec["pages"].append({"id": "about", "title": "About", "blocks": []})
    if appid:
        spec["app"]["appid"] = appid
    return spec


def problems(project, spec) -> list[str]:
    with pytest.raises(UserError) as info:
        prepare(project(spec))
    return [str(p) for p in info.value.problems]


def node(script: str, *args: str) -> dict:
    if shutil.which("node") is None:
        pytest.fail("node is required for this test (.ci/run installs it)")
    result = subprocess.run(["node", "-e", script, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_sample_qr_codes_decode_to_the_launch_urls(tmp_path):
    """The issue's sample: 3 campaigns, 5 entry points, each QR decoded by zbarimg."""
    for tool in ("rsvg-convert", "zbarimg"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required (Debian packages librsvg2-bin and zbar-tools; .ci/run installs them)")
    out = tmp_path / "out"
    prepared = build(SAMPLES / "harbour-coffee", out).prepared
    assert prepared is not None
    section = prepared.spec.section("promotion")
    assert len(section.campaigns) == 3 and len(section.entry_points) == 5
    rows = list(csv.DictReader(io.StringIO((out / "promotion/entry-points.csv").read_text("utf-8"))))
    assert len(rows) == 5
    for row in rows:
        png = tmp_path / f"{row['id']}.png"
        subprocess.run(["rsvg-convert", "-o", str(png), str(out / row["qr_svg"])], check=True)
        decoded = subprocess.run(["zbarimg", "-q", "--raw", str(png)], capture_output=True, text=True, check=True)
        assert decoded.stdout.strip() == row["launch_url"]
    table = next(r for r in rows if r["id"] == "table-xtd-12")
    assert table["launch_url"] == ("alipays://platformapi/startapp?appId=2021004123456789&page=pages%2Fmenu%2Fmenu"
                                   "&query=store%3Dxintiandi%26table%3D12%26ch%3Dtable-sticker%26ep%3Dtable-xtd-12")
    assert (table["url_param"], table["query_param"], table["describe"]) == (
        "pages/menu/menu", "store=xintiandi&table=12&ch=table-sticker&ep=table-xtd-12", "新天地店桌贴 12 号桌")


def test_report_has_keywords_campaign_status_and_entry_points(project, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795564800")  # 2026-11-25
    report = json.loads(prepare(project(promo_spec())).tree.text("promotion/report.json"))
    assert report["search_keywords"] == ["咖啡", "latte"]
    assert report["campaigns"][0]["status"] == "running"
    assert report["entry_points"] == [{"id": "table-12", "channel": "table-sticker", "page": "about",
                                       "query": "store=main&table=12&ch=table-sticker&ep=table-12"}]


SHARE = r"""
const path = require('path');
let page;
global.my = {};
global.getApp = () => ({});
global.Page = (o) => { page = o; };
require(path.resolve(process.argv[1]));
page.onLoad(JSON.parse(process.argv[2]));
process.stdout.write(JSON.stringify(page.onShareAppMessage()));
"""


def test_share_titles_and_channel_tag(project, tmp_path):
    build(project(promo_spec()), tmp_path / "out")
    about = node(SHARE, str(tmp_path / "out/pages/about/about.js"), '{"table": "12"}')
    # No leading '/': Alipay's share path is relative (自定义分享如何携带&获取参数.md).
    assert about == {"title": "About us", "desc": "Share desc", "path": "pages/about/about?table=12&ch=share"}
    home = node(SHARE, str(tmp_path / "out/pages/home/home.js"), "{}")
    assert home == {"title": "Home", "desc": "Share desc", "path": "pages/home/home?ch=share"}


VISITS = r"""
// Launches the app with options, then opens a page with a query; prints what was recorded.
const path = require('path');
const [appFile, pageFile, launch, query] = process.argv.slice(1);
const storage = {};
let app, page;
global.my = { setStorageSync: (o) => { storage[o.key] = o.data; }, getStorageSync: (o) => ({ data: storage[o.key] }) };
global.App = (o) => { app = o; };
global.getApp = () => app;
global.Page = (o) => { page = o; };
require(path.resolve(appFile));
require(path.resolve(pageFile));
app.onShow(JSON.parse(launch));
page.onLoad(JSON.parse(query));
const g = app.globalData;
process.stdout.write(JSON.stringify([g.scene, g.channel, g.entryPoint, g.store, g.table, storage['mpforge.attribution'].channel]));
"""


@pytest.mark.parametrize("launch, query, recorded", [
    # A table sticker's mini-program code: its query_param arrives in the launch options.
    ({"scene": 1011, "query": {"store": "xintiandi", "table": "12", "ch": "table-sticker", "ep": "table-xtd-12"}},
     {}, [1011, "table-sticker", "table-xtd-12", "xintiandi", "12", "table-sticker"]),
    # A share card: the shared path's query arrives in the page's onLoad, not in App.
    ({"scene": 1007, "query": {}}, {"ch": "share"}, [1007, "share", "", "", "", "share"]),
])
def test_visits_are_attributed_from_launch_and_page_queries(project, tmp_path, launch, query, recorded):
    build(project(promo_spec()), tmp_path / "out")
    result = node(VISITS, str(tmp_path / "out/app.js"), str(tmp_path / "out/pages/about/about.js"),
                  json.dumps(launch), json.dumps(query))
    assert result == recorded


def test_an_entry_points_store_joins_its_query_and_a_long_describe_is_a_review_warning(project, tmp_path):
    spec = promo_spec()
    spec["promotion"]["entry_points"][0].update(query="table=12", description="新天地店一楼靠窗第十二号桌的桌贴二维码，扫码点单、领券、参加冬日暖饮季活动")
    prepared = build(project(spec), tmp_path / "out").prepared
    rows = list(csv.DictReader(io.StringIO(prepared.tree.text("promotion/entry-points.csv"))))
    assert rows[0]["query_param"] == "table=12&store=main&ch=table-sticker&ep=table-12"
    [warning] = [w for w in prepared.warnings if w.rule == "review/qr-describe"]
    assert warning.path == "promotion.entry_points[0].description" and warning.severity == "warning"
    assert "at most 32" in warning.message and str(warning).endswith("[review/qr-describe]")


def test_promotion_files_stay_out_of_the_upload(project, tmp_path):
    prepared = build(project(promo_spec()), tmp_path / "out").prepared
    assert json.loads(prepared.tree.text("mini.project.json"))["uploadExclude"] == [".mpforge*", "promotion/**"]


CAMPAIGN = r"""
// Runs a page's campaign timer logic at fixed clock times.
const path = require('path');
let page;
global.my = {};
global.Page = (o) => { page = o; };
require(path.resolve(process.argv[1]));
page.setData = (update) => { for (const [k, v] of Object.entries(update)) {
  const [key, field] = k.split('.'); page.data[key][field] = v; } };
const results = [];
for (const now of JSON.parse(process.argv[2])) {
  Date.now = () => now;
  page.mfTickCampaigns();
  results.push([page.data.b0.visible, page.data.b1.visible, page.data.b1.remaining]);
}
process.stdout.write(JSON.stringify(results));
"""


def test_campaign_blocks_show_only_inside_their_window(project, tmp_path):
    blocks = [{"type": "campaign-banner", "campaign": "winter"}, {"type": "countdown", "campaign": "winter"}]
    build(project(promo_spec(blocks)), tmp_path / "out")
    start = int(datetime.fromisoformat(PROMO["campaigns"][0]["start"]).timestamp() * 1000)
    end = int(datetime.fromisoformat(PROMO["campaigns"][0]["end"]).timestamp() * 1000)
    times = [start - 1000, start, end - 3_723_000, end - 90_061_000, end]
    results = node(CAMPAIGN, str(tmp_path / "out/pages/home/home.js"), json.dumps(times))
    assert results == [[False, False, ""], [True, True, "46天 23:59:59"], [True, True, "01:02:03"],
                       [True, True, "1天 01:01:01"], [False, False, ""]]


ATTRIBUTION = r"""
const path = require('path');
const storage = {};
global.my = {
  getStorageSync: ({ key }) => ({ data: storage[key] }),
  setStorageSync: ({ key, data }) => { storage[key] = data; },
};
const launches = [];
global.App = (o) => { o.globalData = JSON.parse(JSON.stringify(o.globalData)); launches.push(o); };
for (const options of JSON.parse(process.argv[2])) {
  delete require.cache[path.resolve(process.argv[1])];
  require(path.resolve(process.argv[1]));
}
const results = JSON.parse(process.argv[2]).map((options, i) => {
  launches[i].onShow(options);
  return [launches[i].globalData.channel, launches[i].globalData.entryPoint];
});
process.stdout.write(JSON.stringify(results));
"""


def test_channel_and_entry_point_are_kept_and_restored(project, tmp_path):
    build(project(promo_spec()), tmp_path / "out")
    launches = [{"query": {"ch": "table-sticker", "ep": "table-12"}}, {"query": {}}, {},
                {"query": {"ch": "share"}}]
    assert node(ATTRIBUTION, str(tmp_path / "out/app.js"), json.dumps(launches)) == [
        ["table-sticker", "table-12"], ["table-sticker", "table-12"], ["table-sticker", "table-12"], ["share", ""]]


@pytest.mark.parametrize("change, expected", [
    (lambda p: p["campaigns"][0].update(end="2026-11-01T00:00:00+08:00"),
     "promotion.campaigns[0]: 'end' (2026-11-01T00:00:00+08:00) must be after 'start'"),
    (lambda p: p["campaigns"][0].update(start="2026-11-15T00:00:00"),
     "promotion.campaigns[0].start: input should have timezone info"),
    (lambda p: p["campaigns"][0].update(landing="abuot"), "promotion.campaigns[0].landing: no page with id 'abuot'"),
    (lambda p: p["campaigns"][0].update(coupons=["gone"]),
     "promotion.campaigns[0].coupons[0]: no coupon with id 'gone'"),
    (lambda p: p["entry_points"][0].update(query="store=main&ch=x"), "query key 'ch' is reserved"),
    (lambda p: p["entry_points"][0].update(query="name=<b>"), "query part 'name=<b>' is not key=value with URL-safe"),
    (lambda p: p["entry_points"][0].update(query="a=" + "x" * 199), "string should have at most 200 characters"),
    (lambda p: p["entry_points"][0].update(channel="Poster Spring"), "promotion.entry_points[0].channel:"),
    (lambda p: p["entry_points"].append(dict(p["entry_points"][0])), "duplicate entry point id 'table-12'"),
    (lambda p: p["entry_points"][0].update(store="nowhere", query="table=12"),
     "promotion.entry_points[0].store: no store with id"),
    (lambda p: p["entry_points"][0].update(query="store=other&table=12"),
     "promotion.entry_points[0]: the query says 'store=other' but 'store' is 'main'"),
    (lambda p: p["share"]["pages"].update(menu={"title": "x"}), "promotion.share.pages.menu: no page with id 'menu'"),
    (lambda p: p.update(search_keywords=["k"] * 11), "promotion.search_keywords: needs at most 10 items, got 11"),
])
def test_every_rule_is_located(project, change, expected):
    spec = promo_spec()
    change(spec["promotion"])
    found = problems(project, spec)
    assert any(expected in p for p in found), found
    assert all(p.startswith("mpforge.yaml:") for p in found)


def test_entry_points_need_an_appid(project):
    assert any("promotion.entry_points: entry point QR codes need app.appid" in p
               for p in problems(project, promo_spec(appid=None)))


def test_ended_campaign_warns(project, cli):
    spec = promo_spec()
    spec["promotion"]["campaigns"][0].update(start="2020-01-01T00:00:00+08:00", end="2020-02-01T00:00:00+08:00")
    result = cli("check", project(spec))
    assert result.exit_code == 0
    assert "promotion.campaigns[0].end: campaign 'winter' ended on 2020-02-01T00:00:00+08:00" in result.stderr


def test_qr_output_is_deterministic(project):
    spec = project(promo_spec())
    assert prepare(spec).tree["promotion/qr/table-12.svg"] == prepare(spec).tree["promotion/qr/table-12.svg"]
