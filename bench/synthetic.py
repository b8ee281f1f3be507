"""Synthetic specs of any size, mixing every core block and coupon blocks, for benchmarks.

    python bench/synthetic.py 200 /tmp/spec200   # writes /tmp/spec200/mpforge.yaml + assets
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "sample_projects" / "harbour-coffee" / "assets"


def page_blocks(i: int) -> list[dict]:
    return [
        {"type": "banner", "slides": [{"image": "banner/spring-1.png", "link": "p0"},
                                      {"image": "banner/spring-2.png", "link": {"url": "https://example.com/x"}}]},
        {"type": "notice-bar", "text": f"第 {i} 页公告：今日特惠 {{{{ not a binding }}}}"},
        {"type": "heading", "text": f"Page {i}", "subtitle": "副标题"},
        {"type": "icon-grid", "items": [{"icon": "grid/order.png", "text": f"入口{j}", "link": f"p{(i + j) % 3}"}
                                        for j in range(4)]},
        {"type": "product-list", "layout": "grid" if i % 2 else "list", "items": [
            {"name": f"商品 {i}-{j}", "price": 10 + j, "original_price": 20 + j, "image": "menu/latte.png",
             "tag": "新品"}
            for j in range(6)]},
        {"type": "text", "text": "段落文字 " * 20},
        {"type": "image", "image": "about/roastery.png", "link": {"store": "s0"}},
        {"type": "store-info"},
        {"type": "divider"},
        {"type": "button", "text": "Call", "link": {"phone": "400-820-1234"}},
        {"type": "coupon-list", "title": "领券"},
        {"type": "coupon-banner", "coupon": "cash-5"},
    ]


def make_spec(pages: int) -> dict:
    return {
        "spec_version": 1,
        "app": {"name": f"Bench {pages}", "description": "synthetic"},
        "merchant": {"name": "Bench", "phone": "400-820-1234", "stores": [
            {"id": f"s{k}", "name": f"店 {k}", "address": "上海市", "lat": 31.2, "lng": 121.4, "hours": "9-21"}
            for k in range(3)]},
        "assets": "assets",
        "pages": [{"id": f"p{i}", "title": f"页面 {i}", "blocks": page_blocks(i)} for i in range(pages)],
        "coupon": {"backend": {"base_url": "https://api.example.com"}, "coupons": [
            {"id": "cash-5", "kind": "cash", "title": "立减 5 元", "value": 5, "min_spend": 25,
             "validity": {"days_after_claim": 14}, "stock": 5000, "activity_id": "2026110400826004508401234567"},
            {"id": "latte-85", "kind": "discount", "title": "拿铁 8.5 折", "rate": 0.85,
             "validity": {"days_after_claim": 7}, "stock": 2000, "activity_id": "2026110400826004508401234568"}]},
        "tabbar": {"items": [{"page": f"p{i}", "text": f"T{i}", "icon": "tab/home.png",
                              "active_icon": "tab/home-active.png"} for i in range(min(3, pages))]},
    }


def write_spec(pages: int, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "assets").exists():
        shutil.copytree(ASSETS, folder / "assets")
    path = folder / "mpforge.yaml"
    path.write_text(yaml.safe_dump(make_spec(pages), allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_spec(int(sys.argv[1]), Path(sys.argv[2])))
