"""`mpforge qrcodes`: the real mini-program code (小程序码) of every entry point.

For each entry point of the spec's `promotion` section, Alipay makes the code
(alipay.open.app.qrcode.create, through `AlipayClient`, the back end's one way to call
Alipay) and mpforge downloads its image from `qr_code_url`. Codes are cached by content
in the project's state folder (plugins/promotion/codes.py holds the format, which the
build reads): a second run with nothing changed calls Alipay zero times, a changed entry
point exactly once. Each step is saved as soon as it is done (the URL right after the
call, the image right after the download; every write a temp file and os.replace), so a
run that fails midway keeps what it did and the next run goes on from there.

Then it writes print files per entry point into the output folder: `<id>.png` (the
code), `<id>.svg` (an A6 card: the code and the entry point's name) and
`entry-points.csv` (what was asked, the code's URL and the files' names).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from builder import pipeline
from builder.errors import Problem, UserError
from builder.model import ValidSpec
from builder.serve.alipay_client import QR_DESCRIBE_MAX, AlipayClient
from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import PRIVATE_KEY_VARIABLE, PUBLIC_KEY_VARIABLE, AlipayConfig, Merchant
from plugins.promotion.codes import (
    CACHE_FILE,
    CACHE_FORMAT,
    IMAGES,
    CodeRequest,
    cache_folder,
    cached_png,
    is_png,
    print_svg,
    read_cache,
)
from plugins.promotion.models import EntryPoint, PromotionSection

OUTPUT = "qrcodes"  # beside the spec
SANDBOX_OUTPUT = "qrcodes-sandbox"  # sandbox codes never land where real ones are printed from
CSV_FILE = "entry-points.csv"
DOWNLOAD_TIMEOUT = 30.0  # seconds
SANDBOX_WARNING = "沙箱码 SANDBOX · 不可印刷使用"
TEMP_PREFIX = ".mpforge-tmp-"  # `mpforge dev` ignores files named so

# What to do about Alipay's refusals of qrcode.create, by sub_code ({appid}: the app's).
# isv.insufficient-isv-permissions: AD:`support/支付宝小程序/常见问题/调用小程序二维码接口报错“ISV权限不足”.md`.
REFUSAL_HINTS: Mapping[str, str] = {
    "isv.insufficient-isv-permissions": "bind the 小程序码 product to this mini-program in Alipay's open platform "
                                        "console, and check that app.appid is the mini-program's own app id",
    "isv.invalid-app-id": "check that app.appid is the mini-program's app id and the keys are this app's",
    "isv.invalid-signature": f"the key in ${PRIVATE_KEY_VARIABLE} does not match the app public key set in "
                             "Alipay's console for this app",
    "isv.invalid-timestamp": "this machine's clock is off: set it right (Alipay reads it as Beijing time)",
    UnverifiedResponse.CODE: f"check that ${PUBLIC_KEY_VARIABLE} holds Alipay's public key for this app "
                             "(not the app's own public key)",
    "INVALID_PARAMETER": "check the entry point's page, query and description",
}
DEFAULT_HINT = ("look the sub_code up in Alipay's error codes (opendocs.alipay.com/common/02km9f); codes made so far "
                "are kept, so rerunning asks only for the rest")


@dataclass(frozen=True)
class EntryCodes:
    """A spec's entry points, checked and ready to ask Alipay for their codes."""

    spec: ValidSpec
    appid: str
    entries: tuple[EntryPoint, ...]

    @property
    def name(self) -> str:
        return self.spec.model.app.name


@dataclass(frozen=True)
class CodeFiles:
    """One entry point's printable files, and whether this run called Alipay for it."""

    entry_id: str
    png: Path
    svg: Path
    qr_code_url: str
    created: bool


@dataclass(frozen=True)
class QrcodesResult:
    out_dir: Path
    codes: tuple[CodeFiles, ...]
    csv: Path
    sandbox: bool

    @property
    def calls(self) -> int:
        """How many codes this run asked Alipay for."""
        return sum(code.created for code in self.codes)


def load_entry_codes(spec_path: str | Path | None) -> EntryCodes:
    """The spec's entry points, once the spec builds cleanly (`pipeline.prepare`) and
    every entry point can be asked for: UserError (located) otherwise, before any call."""
    spec = pipeline.prepare(spec_path).spec
    section = spec.section(PromotionSection)
    if section is None or not section.entry_points:
        raise UserError([spec.problem(("promotion", "entry_points") if section else ("promotion",),
                                      "no entry points: mpforge qrcodes makes the codes of promotion.entry_points",
                                      hint="add entry points (id, name, description, page, channel) under "
                                           "'promotion: entry_points:'")])
    appid = spec.model.app.appid
    if appid is None:  # the promotion plugin's rules already refuse entry points without it
        raise UserError([spec.problem(("app",), "mini-program codes need the app's Alipay app id",
                                      hint="add 'appid:' under 'app:' (16 digits, from the Alipay console)")])
    too_long = [spec.problem(("promotion", "entry_points", i, "description"),
                             f"{len(entry.description)} characters; Alipay's describe takes at most {QR_DESCRIBE_MAX}",
                             hint="shorten it: Alipay would refuse this code")
                for i, entry in enumerate(section.entry_points) if len(entry.description) > QR_DESCRIBE_MAX]
    if too_long:
        raise UserError(too_long)
    return EntryCodes(spec, appid, tuple(section.entry_points))


def make_qrcodes(codes: EntryCodes, alipay: AlipayConfig, out_dir: str | Path | None = None, *,
                 sandbox: bool = False, force: bool = False) -> QrcodesResult:
    """Make (or find in the cache) each entry point's code through `alipay`, then write
    the print files. `sandbox`: `alipay` is a sandbox gateway; its codes are cached apart
    and marked as not printable. `force`: ask Alipay again even for cached codes."""
    spec = codes.spec
    folder = cache_folder(spec.state_dir, sandbox=sandbox)
    cache = _Cache(folder)
    client: AlipayClient | None = None
    made: list[tuple[EntryPoint, bytes, str, bool]] = []
    for index, entry in enumerate(codes.entries):
        request = CodeRequest.for_entry(codes.appid, entry)
        record = cache.codes.get(request.key)
        created = False
        if force or record is None or not isinstance(record.get("qr_code_url"), str):
            client = client or _client(alipay, codes.appid, sandbox)
            record = cache.save(request.key, _create(client, request, spec, index, sandbox))
            created = True
        png = None if created else cached_png(folder, cache.codes, request)
        if png is None:
            png = _download(record["qr_code_url"], spec, index)
            cache.save_image(request.key, png)
        made.append((entry, png, record["qr_code_url"], created))
    out = Path(out_dir) if out_dir else spec.root / (SANDBOX_OUTPUT if sandbox else OUTPUT)
    return _write_outputs(out, codes, made, sandbox)


def run_qrcodes(spec_path: str | Path | None, out_dir: str | Path | None = None, *, sandbox: bool = False,
                force: bool = False) -> QrcodesResult:
    """`mpforge qrcodes`: against Alipay with the app's keys from the environment, or
    against an in-process sandbox gateway (`sandbox`), which needs no keys."""
    codes = load_entry_codes(spec_path)
    if not sandbox:
        return make_qrcodes(codes, AlipayConfig.from_environment([codes.appid]), out_dir, force=force)
    merchant = Merchant(appid=codes.appid, name=codes.name, spec_path=codes.spec.loaded.path)
    try:
        local = LocalSandbox([merchant])
    except PermissionError:
        raise UserError("--sandbox listens on port 80 of a loopback address (the only port Alipay's SDK reaches), "
                        "which needs root or CAP_NET_BIND_SERVICE") from None
    with local:
        return make_qrcodes(codes, local.alipay, out_dir, sandbox=True, force=force)


def _client(alipay: AlipayConfig, appid: str, sandbox: bool) -> AlipayClient:
    try:
        return alipay.client(appid)
    except UserError as exc:
        if sandbox:
            raise
        raise UserError([Problem(
            f"making mini-program codes needs the app's Alipay keys: {exc}",
            hint=f"set {PRIVATE_KEY_VARIABLE.format(appid=appid)} (the app private key) and "
                 f"{PUBLIC_KEY_VARIABLE.format(appid=appid)} (Alipay's public key), PEM or the one line of "
                 "base64 Alipay's key tool gives; or try the command with --sandbox")]) from None


def _create(client: AlipayClient, request: CodeRequest, spec: ValidSpec, index: int,
            sandbox: bool) -> dict[str, Any]:
    """Ask Alipay for the code; its cache record (image still to download)."""
    where = ("promotion", "entry_points", index)
    try:
        code = client.create_qrcode(request.url_param, request.query_param, request.describe)
    except AlipayError as exc:
        detail = f" ({exc.sub_code}: {exc.sub_msg})" if exc.sub_code else ""
        raise UserError([spec.problem(where, f"Alipay refused the code: {exc.code} {exc.msg}{detail}",
                                      hint=REFUSAL_HINTS.get(exc.sub_code, DEFAULT_HINT).format(
                                          appid=request.appid))]) from None
    except AlipayUnavailable as exc:
        raise UserError([spec.problem(where, f"Alipay did not answer ({exc.reason})",
                                      hint="rerun later: codes made so far are kept")]) from None
    return {"appid": request.appid, "url_param": request.url_param, "query_param": request.query_param,
            "describe": request.describe, "qr_code_url": code.url, "qr_code_url_circle_blue": code.url_circle_blue,
            "qr_code_url_circle_white": code.url_circle_white, "sandbox": sandbox, "image": None, "sha256": None}


def _download(url: str, spec: ValidSpec, index: int) -> bytes:
    where = ("promotion", "entry_points", index)
    try:
        response = httpx.get(url, timeout=DOWNLOAD_TIMEOUT, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        problem = spec.problem(where, f"could not download the code's image from {url}: {exc}",
                               hint="rerun: the code is recorded, so only its image is fetched again "
                                    "(--force asks Alipay for the code anew)")
        raise UserError([problem]) from None
    if not is_png(response.content):
        kind = response.headers.get("content-type", "unknown type")
        raise UserError([spec.problem(where, f"the code's image at {url} is not a PNG ({kind}, "
                                             f"{len(response.content)} bytes)",
                                      hint="rerun; if it persists, open the URL in a browser to see what "
                                           "Alipay serves")])
    return response.content


class _Cache:
    """The cache file and image folder of one run; every change saved at once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            self.codes: dict[str, dict[str, Any]] = dict(read_cache(folder))
        except ValueError as exc:
            raise UserError([Problem(str(exc), hint=f"delete {folder / CACHE_FILE} and rerun: every code is "
                                                    "asked for again")]) from None

    def save(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        self.codes[key] = record
        text = json.dumps({"format": CACHE_FORMAT, "codes": self.codes}, ensure_ascii=False, indent=2,
                          sort_keys=True)
        _write_atomic(self.folder / CACHE_FILE, (text + "\n").encode("utf-8"))
        return record

    def save_image(self, key: str, png: bytes) -> None:
        """The image first, then the record naming it: a crash between leaves an unnamed file."""
        name = f"{key}.png"
        _write_atomic(self.folder / IMAGES / name, png)
        self.save(key, {**self.codes[key], "image": name, "sha256": hashlib.sha256(png).hexdigest()})


def _write_atomic(path: Path, data: bytes) -> None:
    """`data` at `path`, whole or not at all: a temp file beside it, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}-{path.name}")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)  # after a failure, leave nothing behind


def _write_outputs(out: Path, codes: EntryCodes, made: list[tuple[EntryPoint, bytes, str, bool]],
                   sandbox: bool) -> QrcodesResult:
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["id", "name", "kind", "store", "url_param", "query_param", "describe", "qr_code_url",
                     "png", "svg"])
    files = []
    for entry, png, url, created in made:
        request = CodeRequest.for_entry(codes.appid, entry)
        png_path, svg_path = out / f"{entry.id}.png", out / f"{entry.id}.svg"
        _write_atomic(png_path, png)
        card = print_svg(png, entry.name, entry.description, warning=SANDBOX_WARNING if sandbox else "")
        _write_atomic(svg_path, card.encode("utf-8"))
        writer.writerow([entry.id, entry.name, entry.kind, entry.store or "", request.url_param,
                         request.query_param, request.describe, url, png_path.name, svg_path.name])
        files.append(CodeFiles(entry.id, png_path, svg_path, url, created))
    _write_atomic(out / CSV_FILE, rows.getvalue().encode("utf-8"))
    return QrcodesResult(out, tuple(files), out / CSV_FILE, sandbox)
