"""The floor for a full build: a plain jinja2 script with no validation, plan, checks or
atomic write. It reads the same spec with PyYAML's C loader and renders the same set of
files (app.json/js/acss, mini.project.json, four files per page, copied assets) with one
template per file kind, each page's data as JSON as mpforge emits it.

    python bench/floor_jinja.py SPEC_DIR OUT_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import jinja2
import yaml

ENV = jinja2.Environment(autoescape=True, keep_trailing_newline=True,
                         variable_start_string="[[", variable_end_string="]]")
AXML = ENV.from_string("""<view class="page">
{% for block in blocks %}  <view class="mf-[[ block.type ]]" a:if="{{b[[ loop.index0 ]]}}">
    <text>{{b[[ loop.index0 ]].text}}</text>
{% if block['items'] %}    <view a:for="{{b[[ loop.index0 ]].items}}" a:key="*this"><text>{{item.name}}</text></view>
{% endif %}  </view>
{% endfor %}</view>
""")
JS = ENV.from_string("""const mpforge = require('../../utils/mpforge.js');
Page({
  data: {
{% for key, value in data.items() %}    [[ key|tojson ]]: [[ value|tojson ]],
{% endfor %}  },
  onTap(event) { mpforge.openLink(event.currentTarget.dataset.link); },
});
""")
ACSS = ENV.from_string(""".page { background: [[ color ]]; }
{% for block in blocks %}.mf-[[ block.type ]] { margin: 24rpx; }
{% endfor %}""")
APP_JS = ENV.from_string("App({ globalData: [[ data|tojson ]] });\n")


def dump(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2) + "\n"


def main(spec_dir: Path, out: Path) -> None:
    spec = yaml.load((spec_dir / "mpforge.yaml").read_text("utf-8"), Loader=yaml.CSafeLoader)
    files: dict[str, str] = {
        "app.json": dump({"pages": [f"pages/{p['id']}/{p['id']}" for p in spec["pages"]],
                          "window": {"defaultTitle": spec["app"]["name"]}}),
        "app.js": APP_JS.render(data={"appName": spec["app"]["name"]}),
        "app.acss": "page { font-size: 28rpx; }\n",
        "mini.project.json": dump({"format": 2, "compileOptions": {"component2": True}}),
    }
    for page in spec["pages"]:
        base = f"pages/{page['id']}/{page['id']}"
        blocks = page["blocks"]
        files[f"{base}.axml"] = AXML.render(blocks=blocks)
        files[f"{base}.js"] = JS.render(data={f"b{i}": block for i, block in enumerate(blocks)})
        files[f"{base}.acss"] = ACSS.render(blocks=blocks, color="#f5f5f5")
        files[f"{base}.json"] = dump({"defaultTitle": page["title"], "usingComponents": {}})
    for path, text in files.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    shutil.copytree(spec_dir / spec["assets"], out / "assets", dirs_exist_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
