"""The member card's images, checked at build time against what Alipay's image upload
(alipay.offline.material.image.upload) takes for a card template: png or jpg, the logo at
least 500×500 px and at most 1 MB, the background at least 1020×643 px and at most 2 MB
(docs/alipay-membership-facts.md §6). The back end uploads them when it makes the card
template, long after the build: the build warns first (rule review/card-image), as a
review finding, since a draft spec may still use placeholder pictures.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.plugin_api import Problem, ValidSpec

    from .models import CardDesign

# field -> (least width, least height, most bytes)
LIMITS = {"logo": (500, 500, 1024 * 1024), "background": (1020, 643, 2 * 1024 * 1024)}
RULE = "review/card-image"
PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8"
# JPEG start-of-frame markers, which carry the picture's size (not DHT, JPG or DAC).
SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG or JPEG, or None for anything else (or a broken file)."""
    if data.startswith(PNG) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if not data.startswith(JPEG):
        return None
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
        if marker in SOF:
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    return None


def card_image_problems(spec: ValidSpec, card: CardDesign) -> list[Problem]:
    folder = spec.assets_dir
    problems = []
    for field, (least_w, least_h, most_bytes) in LIMITS.items():
        ref: str = getattr(card, field)
        if ref.startswith("https://") or folder is None:
            continue  # a web image is fetched by the back end; a missing folder is the asset rules' to report
        problems += _check(spec, ("membership", "card", field), folder / ref, ref, (least_w, least_h, most_bytes))
    return problems


def _check(spec: ValidSpec, path: tuple[str, ...], file: Path, ref: str,
           limits: tuple[int, int, int]) -> list[Problem]:
    least_w, least_h, most_bytes = limits
    try:
        if not file.resolve().is_relative_to(spec.root.resolve()) or not file.is_file():
            return []  # missing or outside the project: the asset rules report it
        data = file.read_bytes()
    except OSError:
        return []
    size = image_size(data)
    if size is None:
        return [spec.problem(path, f"{ref} is not a png or jpg image, which is what Alipay takes for a card",
                             hint="save it as png or jpg", severity="warning", rule=RULE)]
    width, height = size
    problems = []
    if width < least_w or height < least_h:
        problems.append(spec.problem(path, f"{ref} is {width}×{height} px; Alipay's card needs at least "
                                           f"{least_w}×{least_h}",
                                     hint=f"use a picture of at least {least_w}×{least_h} px",
                                     severity="warning", rule=RULE))
    if len(data) > most_bytes:
        problems.append(spec.problem(path, f"{ref} is {len(data) // 1024} KB; Alipay takes at most "
                                           f"{most_bytes // (1024 * 1024)} MB for it",
                                     hint="compress it or make it smaller", severity="warning", rule=RULE))
    return problems
