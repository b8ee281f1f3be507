"""The public API for plugin authors: import from here, not from the modules behind it.

    from builder.plugin_api import hookimpl, Block, BlockType, Link, ShortText

Everything named here is stable within HOOK_API_VERSION; the hooks themselves are
documented in `builder.hookspecs` and docs/plugins.md. This module is cheap to import:
it loads the shared model types, not the pipeline.
"""

from .errors import Problem, UserError
from .filetree import FileTree
from .hookspecs import HOOK_API_VERSION, hookimpl
from .model import (
    AppPlan,
    AppScript,
    Block,
    BlockType,
    PagePlan,
    PlanContext,
    Render,
    ValidSpec,
    asset_url,
    page_path,
)
from .spec_models import (
    Asset,
    Color,
    HttpsUrl,
    Id,
    Link,
    Page,
    PageId,
    PageOptions,
    Phone,
    Ref,
    ShortText,
    StoreId,
    StrictModel,
    Text,
    WebPage,
    ref_field,
)
from .write import WriteResult

__all__ = [
    "HOOK_API_VERSION", "hookimpl", "Block", "BlockType", "Problem", "UserError", "FileTree",
    "AppPlan", "AppScript", "PagePlan", "PlanContext", "Render", "ValidSpec", "WriteResult", "Page", "PageOptions",
    "StrictModel", "Asset", "Color", "HttpsUrl", "Id", "Link", "PageId", "Phone", "Ref", "ShortText", "StoreId",
    "Text", "WebPage", "asset_url", "page_path", "ref_field",
]
