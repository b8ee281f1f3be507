"""__NAME__: an mpforge plugin adding the `__BLOCK__` block."""

from pathlib import Path
from typing import Literal

from pydantic import Field

from builder.plugin_api import Block, BlockType, Link, ShortText, hookimpl

__version__ = "0.1.0"
PLUGIN_NAME = "__NAME__"
TEMPLATES = Path(__file__).parent / "templates"


class __CLASS__Block(Block):
    """A card with a title, a line of text and an optional link."""

    type: Literal["__BLOCK__"]
    title: ShortText
    text: str = Field("", max_length=200)
    link: Link | None = None


@hookimpl
def mpforge_block_types() -> list[BlockType]:
    return [BlockType(name="__BLOCK__", model=__CLASS__Block, template="blocks/__BLOCK__.axml",
                      style="blocks/__BLOCK__.acss", description="a card from the __NAME__ plugin")]


@hookimpl
def mpforge_template_dirs() -> list[Path]:
    return [TEMPLATES]
