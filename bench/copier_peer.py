"""The peer: copier generating the same tree as the jinja2 floor (bench/floor_jinja.py).

Copier renders one template folder per call, so the tree takes one `run_copy` for the
app files and one per page folder (four files each), the way a copier user would
generate a repeated structure. Needs `pip install -r bench/requirements.txt`.

    python bench/copier_peer.py SPEC_DIR OUT_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import copier
import yaml

APP_TEMPLATE = {
    "copier.yml": "app_json: {type: str}\napp_name: {type: str}\n",
    "app.json.jinja": "{{ app_json }}\n",
    "app.js.jinja": "App({ globalData: {{ {'appName': app_name} | tojson }} });\n",
    "app.acss": "page { font-size: 28rpx; }\n",
    "mini.project.json": '{\n  "format": 2,\n  "compileOptions": {\n    "component2": true\n  }\n}\n',
}
PAGE_TEMPLATE = {
    "copier.yml": "page_id: {type: str}\ntitle: {type: str}\nblocks: {type: json}\n",
    "{{page_id}}.axml.jinja": """<view class="page">
{% for block in blocks %}  <view class="mf-{{ block.type }}" a:if="{{ '{{' }}b{{ loop.index0 }}{{ '}}' }}">
    <text>{{ '{{' }}b{{ loop.index0 }}.text{{ '}}' }}</text>
  </view>
{% endfor %}</view>
""",
    "{{page_id}}.js.jinja": """const mpforge = require('../../utils/mpforge.js');
Page({
  data: {
{% for block in blocks %}    "b{{ loop.index0 }}": {{ block | tojson }},
{% endfor %}  },
  onTap(event) { mpforge.openLink(event.currentTarget.dataset.link); },
});
""",
    "{{page_id}}.acss.jinja": """.page { background: #f5f5f5; }
{% for block in blocks %}.mf-{{ block.type }} { margin: 24rpx; }
{% endfor %}""",
    "{{page_id}}.json.jinja": "{{ {'defaultTitle': title, 'usingComponents': {}} | tojson }}\n",
}


def _write_template(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def main(spec_dir: Path, out: Path) -> None:
    spec = yaml.load((spec_dir / "mpforge.yaml").read_text("utf-8"), Loader=yaml.CSafeLoader)
    with tempfile.TemporaryDirectory() as tmp:
        app = _write_template(Path(tmp) / "app", APP_TEMPLATE)
        page = _write_template(Path(tmp) / "page", PAGE_TEMPLATE)
        app_json = json.dumps({"pages": [f"pages/{p['id']}/{p['id']}" for p in spec["pages"]],
                               "window": {"defaultTitle": spec["app"]["name"]}}, ensure_ascii=False, indent=2)
        options = {"defaults": True, "quiet": True, "unsafe": True, "overwrite": True}
        copier.run_copy(str(app), out, data={"app_json": app_json, "app_name": spec["app"]["name"]}, **options)
        for p in spec["pages"]:
            copier.run_copy(str(page), out / "pages" / p["id"],
                            data={"page_id": p["id"], "title": p["title"], "blocks": json.dumps(p["blocks"])},
                            **options)
    shutil.copytree(spec_dir / spec["assets"], out / "assets", dirs_exist_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
