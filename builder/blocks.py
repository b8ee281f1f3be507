"""The block API: what a block type is, and the base model every block extends.

A block type is a pydantic model (the spec fields, with `type: Literal["name"]`), an AXML
template and optionally an ACSS template. Merchant text never goes into the AXML: the
model's `page_data` becomes the page's `data` under the block's key, and the template
binds it with `{{[[ key ]].field}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .spec_models import StrictModel

if TYPE_CHECKING:
    from .plan import PlanContext


class Block(StrictModel):
    """Base model of every block; subclasses narrow `type` to `Literal["their-name"]`."""

    type: str

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        """The data the AXML template binds to. Links and assets are resolved for runtime.

        Override to add computed values (formatted prices, store details); call
        `ctx.to_data(self)` for the default conversion.
        """
        return ctx.to_data(self)


@dataclass(frozen=True)
class BlockType:
    """A block a spec can place on a page (`pages[].blocks[].type == name`)."""

    name: str
    model: type[Block]
    template: str  # AXML template name, e.g. "blocks/banner.axml"
    style: str | None = None  # ACSS template name, added once to app.acss when used
    # JS template of Page members (handlers, lifecycle), added once per page that uses
    # it; rendered with `keys`, the data keys of all blocks on the page sharing it.
    script: str | None = None
    # Page methods the script defines that the core's onLoad(query) / onShow() call, so
    # several block types can react to the same lifecycle event without clashing.
    on_load: str | None = None
    on_show: str | None = None
    on_hide: str | None = None  # called on onHide and onUnload (e.g. to stop timers)
    description: str = ""
