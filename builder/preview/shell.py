"""The preview page around the phone: HTML for `mpforge dev` and `mpforge preview`.

Both use the same `static/preview.js` and `static/preview.css`. The dev server's page
fetches its data; the static page embeds every page's rendered preview as JSON (with
`<`, `>` and `&` escaped, so no text in it can end the script element).
"""

from __future__ import annotations

import html
import json
from typing import Any

# Scripts only from the preview itself; images may come from the app or the web (http(s)
# image URLs in a spec); inline style attributes are part of the rendered AXML.
META_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: http: https:; connect-src 'self'; base-uri 'none'; form-action 'none'")
# frame-ancestors only works as a header (in a <meta> the browser ignores it and logs an
# error on every load), so the dev server's header adds it and the static page does not.
CSP = META_CSP + "; frame-ancestors 'none'"

_BODY = """<div class="mpf-layout">
  <aside class="mpf-sidebar">
    <h1 id="mpf-app-name">{name}</h1>
    <p class="mpf-status" id="mpf-status" data-kind="offline">loading…</p>
    <h2>Pages</h2>
    <ul class="mpf-pages" id="mpf-pages"></ul>
    <div class="mpf-warnings" id="mpf-warnings" hidden><h2>Preview notes</h2><ul></ul></div>{runtime}
  </aside>
  <main class="mpf-stage">
    <div class="mpf-phone" id="mpf-phone">
      <div class="mpf-statusbar"><span>9:41</span><span>●●●● ▮</span></div>
      <header class="mpf-navbar" id="mpf-navbar">
        <button type="button" class="mpf-back" id="mpf-back" aria-label="Back" hidden>‹</button>
        <span class="mpf-title" id="mpf-title"></span>
        <span class="mpf-capsule" aria-hidden="true">••• ◎</span>
      </header>
      <div class="mpf-screen" id="mpf-screen"><div id="mpf-page-host"></div></div>
      <nav class="mpf-tabbar" id="mpf-tabbar" role="tablist" hidden></nav>
      <div class="mpf-ptoast" id="mpf-ptoast" role="status" hidden><span class="mpf-ptoast-icon"></span><span
        class="mpf-ptoast-text"></span></div>
    </div>
  </main>
</div>
<div class="mpf-overlay" id="mpf-overlay" role="alertdialog" aria-labelledby="mpf-overlay-title" hidden>
  <div class="mpf-overlay-box">
    <header><h2 id="mpf-overlay-title">Build failed</h2>
      <button type="button" class="mpf-overlay-close" id="mpf-overlay-close" aria-label="Close">×</button></header>
    <p>The preview still shows the last good build. Fix the problems and save: this closes by itself.</p>
    <ol class="mpf-problems" id="mpf-problems"></ol>
  </div>
</div>
<div class="mpf-toast" id="mpf-toast" role="status" hidden></div>
"""

# The controls of `mpforge dev`'s runtime (static/runtime.js): what the phone would do
# that the page cannot show, and the sandbox user.
_RUNTIME_PANEL = """
    <section class="mpf-runtime" id="mpf-runtime">
      <h2>Runtime</h2>
      <p class="mpf-backend" id="mpf-backend" data-kind="offline">page scripts: starting…</p>
      <label class="mpf-field">Sandbox user
        <select id="mpf-user">
          <option value="preview">sandbox-user-preview</option>
          <option value="alice">sandbox-user-alice</option>
          <option value="bob">sandbox-user-bob</option>
          <option value="">refuses to authorize</option>
        </select></label>
      <label class="mpf-field">Location
        <select id="mpf-location">
          <option value="">refuses to share it</option>
        </select></label>
      <div class="mpf-actions">
        <button type="button" id="mpf-pull">Pull down to refresh</button>
        <button type="button" id="mpf-share">Share…</button>
        <button type="button" id="mpf-clear-storage">Clear storage</button>
      </div>
      <pre class="mpf-share-out" id="mpf-share-out" hidden></pre>
      <ul class="mpf-log" id="mpf-log" aria-label="runtime log"></ul>
    </section>"""


def shell_html(*, name: str, asset_base: str, mode: str, data: dict[str, Any] | None = None,
               csp_meta: bool = False, runtime: bool = False) -> str:
    """The preview page. `asset_base` is where preview.js/.css are ("/__mpforge/static/" or "");
    `runtime`: run the pages' scripts (runtime.js, loaded before preview.js, which uses it)."""
    head = [
        "<!doctype html>",
        '<html lang="zh-CN">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
    ]
    if csp_meta:
        head.append(f'<meta http-equiv="Content-Security-Policy" content="{html.escape(META_CSP)}">')
    head += [
        f"<title>{html.escape(name)} · mpforge preview</title>",
        '<link rel="icon" href="data:,">',
        f'<link rel="stylesheet" href="{html.escape(asset_base)}preview.css">',
        "</head>",
        f'<body data-mode="{html.escape(mode)}" data-state="loading">',
    ]
    parts = ["\n".join(head), _BODY.format(name=html.escape(name), runtime=_RUNTIME_PANEL if runtime else "")]
    if data is not None:
        parts.append(f'<script type="application/json" id="mpforge-data">{embed_json(data)}</script>')
    if runtime:
        parts.append(f'<script src="{html.escape(asset_base)}runtime.js"></script>')
    parts.append(f'<script src="{html.escape(asset_base)}preview.js"></script>\n</body>\n</html>\n')
    return "\n".join(parts)


def embed_json(data: Any) -> str:
    """JSON safe inside a <script> element: no `<`, `>` or `&` appear literally."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
