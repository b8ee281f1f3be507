"""The public API for plugin authors: import from here, not from the modules behind it.

    from builder.plugin_api import hookimpl, Block, BlockType, Link, ShortText

Everything named here is stable within HOOK_API_VERSION; the hooks themselves are
documented in `builder.hookspecs` and docs/plugins.md.
"""

from .blocks import Block, BlockType
from .errors import Problem, UserError
from .filetree import FileTree
from .hookspecs import HOOK_API_VERSION, hookimpl
from .plan import AppPlan, AppScript, PagePlan, PlanContext
from .spec_models import (
    Asset,
    Color,
    HttpsUrl,
    Id,
    Link,
    Page,
    PageId,
    Phone,
    Ref,
    ShortText,
    StoreId,
    StrictModel,
    Text,
    WebPage,
    ref_field,
)
from .validate import ValidSpec
from .write import WriteResult

__all__ = [
    "HOOK_API_VERSION", "hookimpl", "Block", "BlockType", "Problem", "UserError", "FileTree",
    "AppPlan", "AppScript", "PagePlan", "PlanContext", "ValidSpec", "WriteResult", "Page", "StrictModel",
    "Asset", "Color", "HttpsUrl", "Id", "Link", "PageId", "Phone", "Ref", "ShortText", "StoreId", "Text", "WebPage",
    "ref_field",
]
