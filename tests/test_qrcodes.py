"""`mpforge qrcodes`: real mini-program codes through AlipayClient and the sandbox
gateway, cached by content, downloaded as PNGs, and picked up by the build."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import tree_hashes, unavailable

from builder.api import build
from builder.errors import UserError
from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import Merchant
from builder.serve.qrcodes import load_entry_codes, make_qrcodes, run_qrcodes
from builder.serve.sandbox_state import Faults
from builder.testing import page_spec
from plugins.promotion import DRAFT_LABEL

APPID = "2021004123456789"
TABLE = {"id": "table-12", "name": "Table 12 & more", "kind": "table-sticker", "description": "Table 12 sticker",
         "page": "home", "query": "store=main&table=12", "channel": "table-sticker"}
POSTER = {"id": "poster", "name": "Poster", "kind": "poster", "description": "Window poster", "page": "home",
          "channel": "poster"}


def spec_of(*entries: dict[str, Any], appid: str | None = APPID) -> dict[str, Any]:
    spec = page_spec([], promotion={"entry_points": [copy.deepcopy(e) for e in entries]})
    if appid:
        spec["app"]["appid"] = appid
    return spec


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[LocalSandbox]:
    """A sandbox gateway standing in for Alipay for app APPID."""
    try:
        local = LocalSandbox([Merchant(appid=APPID, name="shop", spec_path=tmp_path / "mpforge.yaml")])
    except PermissionError:
        unavailable("the sandbox listens on port 80 (the only port Alipay's SDK reaches), which needs root")
    with local:
        yield local


def decode(image: Path, tmp_path: Path) -> str:
    """What the QR code in `image` (a PNG, or an SVG rendered first) holds."""
    for tool in ("rsvg-convert", "zbarimg"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required (Debian packages librsvg2-bin and zbar-tools; .ci/run installs them)")
    if image.suffix == ".svg":
        png = tmp_path / f"{image.stem}-rendered.png"
        subprocess.run(["rsvg-convert", "-o", str(png), str(image)], check=True, capture_output=True)
        image = png
    result = subprocess.run(["zbarimg", "--raw", "-q", str(image)], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def issued_content(sandbox: LocalSandbox, qr_code_url: str) -> str | None:
    """What the sandbox says the code at `qr_code_url` encodes."""
    return sandbox.state.qrcode_content(qr_code_url.rsplit("/", 1)[1].removesuffix(".png"))


# --- caching ---------------------------------------------------------------------------------


def test_a_rerun_asks_alipay_nothing_and_a_changed_entry_point_exactly_once(
        project: Callable[..., Path], sandbox: LocalSandbox) -> None:
    spec = project(spec_of(TABLE, POSTER))
    first = make_qrcodes(load_entry_codes(spec), sandbox.alipay)
    assert sandbox.state.qrcode_calls == 2 and first.calls == 2
    again = make_qrcodes(load_entry_codes(spec), sandbox.alipay)
    assert sandbox.state.qrcode_calls == 2 and again.calls == 0
    assert [c.qr_code_url for c in again.codes] == [c.qr_code_url for c in first.codes]
    # What Alipay is not asked about (name, kind) keeps the code; the query is asked about
    # (the entry point's id is in it, as ep=).
    project(spec_of({**TABLE, "query": "store=main&table=13"}, {**POSTER, "name": "Window", "kind": "flyer"}))
    changed = make_qrcodes(load_entry_codes(spec), sandbox.alipay)
    assert sandbox.state.qrcode_calls == 3
    assert [(c.entry_id, c.created) for c in changed.codes] == [("table-12", True), ("poster", False)]
    assert changed.codes[1].qr_code_url == first.codes[1].qr_code_url
    forced = make_qrcodes(load_entry_codes(spec), sandbox.alipay, force=True)
    assert forced.calls == 2 and sandbox.state.qrcode_calls == 5


def test_a_run_that_fails_midway_keeps_what_it_did(project: Callable[..., Path], sandbox: LocalSandbox) -> None:
    spec = project(spec_of(TABLE))
    make_qrcodes(load_entry_codes(spec), sandbox.alipay)
    state_dir = spec.parent / ".mpforge"
    kept = tree_hashes(state_dir)
    project(spec_of(TABLE, POSTER))
    sandbox.state.faults = Faults(busy=True)
    with pytest.raises(UserError) as info:
        make_qrcodes(load_entry_codes(spec), sandbox.alipay)
    assert "promotion.entry_points[1]: Alipay did not answer" in str(info.value)
    assert tree_hashes(state_dir) == kept  # the first code is still there, whole; no temp file left
    sandbox.state.faults = Faults()
    assert make_qrcodes(load_entry_codes(spec), sandbox.alipay).calls == 1
    # An image lost from the cache is fetched again from its recorded URL: no new code.
    for image in (state_dir / "qrcodes").iterdir():
        image.unlink()
    again = make_qrcodes(load_entry_codes(spec), sandbox.alipay)
    assert again.calls == 0 and sandbox.state.qrcode_calls == 2
    assert len(list((state_dir / "qrcodes").iterdir())) == 2


# --- the images and print files -------------------------------------------------------------


def test_the_png_holds_what_the_sandbox_issued_and_the_print_files_list_it(
        project: Callable[..., Path], sandbox: LocalSandbox, tmp_path: Path) -> None:
    spec = project(spec_of(TABLE, POSTER))
    result = make_qrcodes(load_entry_codes(spec), sandbox.alipay, tmp_path / "print")
    assert result.out_dir == tmp_path / "print"
    for code in result.codes:
        content = issued_content(sandbox, code.qr_code_url)
        assert content is not None and content.startswith("https://qr.alipay.com/")
        assert code.png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert decode(code.png, tmp_path) == content
        assert decode(code.svg, tmp_path) == content  # the A6 card embeds the same code
    card = (tmp_path / "print/table-12.svg").read_text("utf-8")
    assert 'width="105mm" height="148mm"' in card and "Table 12 &amp; more" in card and "SANDBOX" not in card
    rows = list(csv.DictReader(io.StringIO((tmp_path / "print/entry-points.csv").read_text("utf-8"))))
    assert [(r["id"], r["png"], r["svg"]) for r in rows] == [("table-12", "table-12.png", "table-12.svg"),
                                                              ("poster", "poster.png", "poster.svg")]
    assert (rows[0]["url_param"], rows[0]["query_param"], rows[0]["describe"]) == (
        "pages/home/home", "store=main&table=12&ch=table-sticker&ep=table-12", "Table 12 sticker")
    assert rows[0]["qr_code_url"] == result.codes[0].qr_code_url


# --- the build -------------------------------------------------------------------------------


def test_the_build_shows_a_cached_real_code_instead_of_the_draft(
        project: Callable[..., Path], sandbox: LocalSandbox, tmp_path: Path) -> None:
    spec = project(spec_of(TABLE, POSTER))
    out = tmp_path / "out"
    build(spec, out)
    assert DRAFT_LABEL in (out / "promotion/qr/table-12.svg").read_text("utf-8")
    # Sandbox codes are kept apart and never reach a build.
    make_qrcodes(load_entry_codes(spec), sandbox.alipay, sandbox=True)
    assert not build(spec, out).skipped
    assert DRAFT_LABEL in (out / "promotion/qr/table-12.svg").read_text("utf-8")
    # The sandbox standing in for Alipay: real codes. The build sees the cache changed.
    result = make_qrcodes(load_entry_codes(spec), sandbox.alipay)
    calls = sandbox.state.qrcode_calls
    assert not build(spec, out).skipped
    for code in result.codes:
        svg = (out / f"promotion/qr/{code.entry_id}.svg").read_text("utf-8")
        assert DRAFT_LABEL not in svg and "data:image/png;base64," in svg
        assert decode(out / f"promotion/qr/{code.entry_id}.svg", tmp_path) == issued_content(sandbox, code.qr_code_url)
    assert sandbox.state.qrcode_calls == calls  # the build reads the cache, never Alipay
    # Deterministic: the same cache builds the same bytes.
    build(spec, tmp_path / "again")
    assert tree_hashes(tmp_path / "again" / "promotion") == tree_hashes(out / "promotion")
    # An entry point changed since its code was made is a draft again; the other keeps its code.
    project(spec_of({**TABLE, "page": "home", "query": "store=main&table=99"}, POSTER))
    build(spec, out)
    assert DRAFT_LABEL in (out / "promotion/qr/table-12.svg").read_text("utf-8")
    assert DRAFT_LABEL not in (out / "promotion/qr/poster.svg").read_text("utf-8")


def test_a_cache_image_edited_by_hand_is_not_used(project: Callable[..., Path], sandbox: LocalSandbox,
                                                  tmp_path: Path) -> None:
    spec = project(spec_of(POSTER))
    make_qrcodes(load_entry_codes(spec), sandbox.alipay)
    (image,) = (spec.parent / ".mpforge/qrcodes").iterdir()
    image.write_bytes(image.read_bytes()[:-10])
    build(spec, tmp_path / "out")
    assert DRAFT_LABEL in (tmp_path / "out/promotion/qr/poster.svg").read_text("utf-8")
    record = json.loads((spec.parent / ".mpforge/qrcodes.json").read_text("utf-8"))["codes"]
    assert [r["sha256"] for r in record.values()] != [hashlib.sha256(image.read_bytes()).hexdigest()]


# --- errors ----------------------------------------------------------------------------------


def problems(call: Callable[[], object]) -> str:
    with pytest.raises(UserError) as info:
        call()
    return "\n".join(str(p) for p in info.value.problems)


def test_a_describe_over_32_characters_is_refused_before_calling_alipay(
        project: Callable[..., Path], sandbox: LocalSandbox) -> None:
    spec = project(spec_of(TABLE, {**POSTER, "description": "x" * 33}))
    text = problems(lambda: load_entry_codes(spec))
    assert "promotion.entry_points[1].description: 33 characters; Alipay's describe takes at most 32" in text
    assert "mpforge.yaml:" in text and sandbox.state.qrcode_calls == 0


def test_a_spec_without_entry_points_or_app_id_is_refused(project: Callable[..., Path]) -> None:
    assert "no entry points" in problems(lambda: load_entry_codes(project(page_spec([]))))
    assert "entry point QR codes need app.appid" in problems(lambda: load_entry_codes(project(spec_of(TABLE,
                                                                                                     appid=None))))


def test_alipay_refusing_names_its_sub_code_and_what_to_do(project: Callable[..., Path],
                                                           sandbox: LocalSandbox) -> None:
    spec = project(spec_of(TABLE))
    sandbox.state.qrcode_refused_apps = frozenset({APPID})
    text = problems(lambda: make_qrcodes(load_entry_codes(spec), sandbox.alipay))
    assert "promotion.entry_points[0]: Alipay refused the code: 40006 Insufficient Permissions " \
           "(isv.insufficient-isv-permissions: ISV权限不足" in text
    assert "bind the 小程序码 product" in text
    assert not (spec.parent / "qrcodes").exists()


def test_missing_keys_are_named_and_cached_codes_need_none(project: Callable[..., Path], sandbox: LocalSandbox,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (f"MPFORGE_ALIPAY_APP_PRIVATE_KEY_{APPID}", f"MPFORGE_ALIPAY_PUBLIC_KEY_{APPID}"):
        monkeypatch.delenv(name, raising=False)
    spec = project(spec_of(TABLE))
    text = problems(lambda: run_qrcodes(spec))
    assert f"needs the app's Alipay keys: app {APPID}: environment variable MPFORGE_ALIPAY_" in text
    assert f"set MPFORGE_ALIPAY_APP_PRIVATE_KEY_{APPID} (the app private key) and MPFORGE_ALIPAY_PUBLIC_KEY_{APPID}" \
           in text and "--sandbox" in text
    make_qrcodes(load_entry_codes(spec), sandbox.alipay)
    assert run_qrcodes(spec).calls == 0  # everything cached: no keys needed


# --- the command -----------------------------------------------------------------------------


def test_the_command_with_sandbox_end_to_end(project: Callable[..., Path], cli: Callable[..., Any],
                                             tmp_path: Path) -> None:
    spec = project(spec_of(TABLE, POSTER))
    first = cli("qrcodes", spec, "--sandbox")
    if first.exit_code == 1 and "needs root" in first.stderr:
        unavailable("the sandbox listens on port 80 (the only port Alipay's SDK reaches), which needs root")
    assert first.exit_code == 0, first.stderr
    assert "sandbox codes" in first.stdout and "not for printing" in first.stdout
    assert "2 codes written" in first.stdout and "(2 asked from the sandbox, 0 from the cache)" in first.stdout
    out = spec.parent / "qrcodes-sandbox"
    assert sorted(p.name for p in out.iterdir()) == ["entry-points.csv", "poster.png", "poster.svg",
                                                     "table-12.png", "table-12.svg"]
    assert decode(out / "poster.png", tmp_path).startswith("https://qr.alipay.com/")
    assert "SANDBOX" in (out / "poster.svg").read_text("utf-8")
    assert not (spec.parent / ".mpforge/qrcodes.json").exists()  # sandbox codes are not real codes
    again = cli("qrcodes", spec, "--sandbox", "-o", tmp_path / "elsewhere")
    assert again.exit_code == 0 and "(0 asked from the sandbox, 2 from the cache)" in again.stdout
    assert (tmp_path / "elsewhere/poster.png").read_bytes() == (out / "poster.png").read_bytes()


def test_the_command_without_keys_exits_1_naming_them(project: Callable[..., Path], cli: Callable[..., Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(f"MPFORGE_ALIPAY_APP_PRIVATE_KEY_{APPID}", raising=False)
    result = cli("qrcodes", project(spec_of(TABLE)))
    assert result.exit_code == 1
    assert f"MPFORGE_ALIPAY_APP_PRIVATE_KEY_{APPID}" in result.stderr and "--sandbox" in result.stderr


def test_an_image_that_is_not_a_png_is_refused(project: Callable[..., Path], sandbox: LocalSandbox) -> None:
    """A code recorded earlier whose URL now serves something else (here: a JPEG)."""
    spec = project(spec_of(POSTER))
    make_qrcodes(load_entry_codes(spec), sandbox.alipay)
    cache = spec.parent / ".mpforge/qrcodes.json"
    data = json.loads(cache.read_text("utf-8"))
    (record,) = data["codes"].values()

    class Jpeg(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            self.wfile.write(b"\xff\xd8\xff\xe0 not a png")

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Jpeg) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        record.update(image=None, sha256=None, qr_code_url=f"http://127.0.0.1:{server.server_port}/code")
        cache.write_text(json.dumps(data), "utf-8")
        text = problems(lambda: make_qrcodes(load_entry_codes(spec), sandbox.alipay))
        server.shutdown()
    assert "promotion.entry_points[0]: the code's image at http://127.0.0.1:" in text
    assert "is not a PNG (image/jpeg, 14 bytes)" in text
    assert sandbox.state.qrcode_calls == 1  # the recorded code was not asked for again
