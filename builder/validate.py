"""Stage 2, validate: raw data -> the typed spec, with every problem located.

The spec model is assembled from the core sections, the registered block types (a
union discriminated by `type`) and plugin sections. All pydantic errors are reported at
once, translated into `file:line:col: path: message (hint)`. Then cross-references are
checked: every `PageRef`, `StoreRef` and `AssetPath` in any model must point at
something that exists.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from .blocks import Block, BlockType
from .build_cache import build_date
from .errors import Problem, ProblemList, SpecError, did_you_mean
from .load import LoadedSpec, PathKey
from .plugin_manager import Plugins
from .spec_models import AssetPath, CoreSpec, Link, Page, Ref, WebUrl


@dataclass
class ValidSpec:
    """A validated spec: the model, where each value came from, and every page."""

    loaded: LoadedSpec
    model: Any  # an instance of the assembled Spec model
    plugins: Plugins
    pages: list[Page] = field(default_factory=list)  # spec pages, then plugin pages
    targets: dict[str, list[str]] = field(default_factory=dict)  # reference kind -> defined ids
    warnings: list[Problem] = field(default_factory=list)

    def problem(self, path: PathKey, message: str, *, hint: str | None = None,
                severity: str = "error") -> Problem:
        """A problem located at `path` in the spec (e.g. ('coupon', 0, 'value'))."""
        return self.loaded.problem(path, message, hint=hint, severity=severity)

    def section(self, key: str) -> Any:
        """A plugin section's model instance, or None when the spec leaves it out."""
        return getattr(self.model, key, None)

    @property
    def root(self) -> Path:
        return self.loaded.root

    @cached_property
    def today(self) -> date:
        """The build's date: SOURCE_DATE_EPOCH when set (reproducible builds), else today."""
        return build_date()

    @property
    def assets_dir(self) -> Path | None:
        return self.root / self.model.assets if self.model.assets else None

    @cached_property
    def references(self) -> list[tuple[PathKey, Any]]:
        """Every Link and reference marker in the spec's sections, with its path."""
        global _page_references
        found: list[tuple[PathKey, Any]] = []
        by_page: dict[int, tuple[BaseModel, list[tuple[PathKey, Any]]]] = {}
        for name in type(self.model).model_fields:
            value = getattr(self.model, name)
            if name != "pages":
                _collect_references(value, (name,), found)
                continue
            for i, page in enumerate(value):
                known = _page_references.get(id(page))
                if known is None or known[0] is not page:  # a page validated afresh
                    known = (page, [])
                    _collect_references(page, (), known[1])
                by_page[id(page)] = known
                found.extend((("pages", i, *path), ref) for path, ref in known[1])
        _page_references = by_page
        return found


REFERENCE_TYPES = (Link, Ref, AssetPath, WebUrl)
# References found in each page model of the last spec, by model (reused with it, see
# _with_validated_pages), with paths relative to the page.
_page_references: dict[int, tuple[BaseModel, list[tuple[PathKey, Any]]]] = {}
_LEAVES = frozenset({str, int, float, bool, type(None)})  # exact types: reference markers subclass str


def _collect_references(value: Any, path: PathKey, found: list[tuple[PathKey, Any]]) -> None:
    """Depth first through models, lists and dicts, keeping reference-typed values."""
    if type(value) in _LEAVES:
        return
    if isinstance(value, REFERENCE_TYPES):
        found.append((path, value))
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _collect_references(getattr(value, name), (*path, name), found)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _collect_references(item, (*path, i), found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect_references(item, (*path, key), found)


@lru_cache(maxsize=16)
def spec_model(block_types: tuple[BlockType, ...], sections: tuple[tuple[str, type], ...]) -> type[BaseModel]:
    """The whole spec's pydantic model for this set of plugins (cached: building it is slow)."""
    models = tuple(bt.model for bt in block_types)
    # Union[tuple] builds the union of a runtime list of types (the | operator cannot).
    block_union = Annotated[Union[models], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
    page_model = create_model("Page", __base__=Page, __module__=__name__,
                              blocks=(list[block_union], Field(default_factory=list)))  # type: ignore[valid-type]
    fields: dict[str, Any] = {
        "pages": (list[page_model], Field(min_length=1)),  # type: ignore[valid-type]
        "requires": (dict[str, str] | None, None),
        "plugins": (list[str] | None, None),
    }
    for key, model in sections:
        fields[key] = (model | None, None)
    return create_model("Spec", __base__=CoreSpec, __module__=__name__, **fields)


def validate_spec(loaded: LoadedSpec, plugins: Plugins) -> ValidSpec:
    """Validate the loaded data; raise SpecError listing every problem found."""
    model_cls = spec_model(tuple(plugins.block_types.values()), tuple(sorted(plugins.sections.items())))
    if not isinstance(loaded.data, dict):
        raise SpecError([loaded.problem((), "the spec must be a mapping of sections",
                                        hint="start from 'mpforge new'")])
    try:
        model = model_cls.model_validate(_with_validated_pages(loaded.data, model_cls))
    except ValidationError as exc:
        raise SpecError([_translate(err, loaded, model_cls, plugins) for err in exc.errors()]) from None
    _remember_validated_pages(loaded.data, model)

    spec = ValidSpec(loaded=loaded, model=model, plugins=plugins, pages=list(model.pages))
    for plugin, pages in plugins.call("mpforge_pages", spec=spec):
        spec.pages.extend(pages)
    for _, targets in plugins.call("mpforge_reference_targets", spec=spec):
        for kind, ids in targets.items():
            spec.targets.setdefault(kind, []).extend(ids)
    problems = ProblemList()
    for _, found in plugins.call("mpforge_validate", spec=spec):
        for problem in found:
            problems.add(problem)
    problems.raise_if_errors()
    spec.warnings = problems.warnings
    return spec


# Validated pages of the last spec, by the identity of their loaded data: the loader
# returns the very same dict for a page whose text did not change (see page_chunks),
# and pydantic takes an instance of a field's own model class without validating it
# again. Validation is a pure function of the data, so the result is the same.
_validated_pages: dict[int, tuple[Any, BaseModel]] = {}


def _with_validated_pages(data: dict, model_cls: type[BaseModel]) -> dict:
    pages = data.get("pages")
    if not isinstance(pages, list) or not _validated_pages:
        return data
    page_cls = typing.get_args(model_cls.model_fields["pages"].annotation)[0]
    reused = []
    for raw in pages:
        known = _validated_pages.get(id(raw))
        reused.append(known[1] if known and known[0] is raw and type(known[1]) is page_cls else raw)
    return {**data, "pages": reused}


def _remember_validated_pages(data: dict, model: BaseModel) -> None:
    global _validated_pages
    _validated_pages = {id(raw): (raw, page) for raw, page in zip(data["pages"], model.pages)}  # type: ignore[attr-defined]


# --- turning pydantic errors into located problems ------------------------------------

def _clean_path(data: Any, loc: tuple) -> PathKey:
    """Drop pydantic's union tags from `loc` so it matches the spec's own structure."""
    path: list = []
    cur = data
    tag_skipped = False
    for part in loc:
        # The discriminated-union tag comes first on entering a block, e.g. 'image' in
        # pages.0.blocks.0.image.image (the second 'image' is the field).
        if isinstance(cur, dict) and cur.get("type") == part and not tag_skipped:
            tag_skipped = True
            continue
        tag_skipped = False
        path.append(part)
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
        else:
            cur = None
    return tuple(path)


def _model_fields_at(model_cls: type[BaseModel], data: Any, path: PathKey) -> dict[str, Any]:
    """The pydantic fields of the model that validates the mapping at `path` (best effort)."""
    annotation: Any = model_cls
    cur = data
    for part in path:
        annotation = _concrete(annotation, cur)
        if isinstance(part, int):
            args = typing.get_args(annotation)
            annotation = args[0] if args else Any
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(part)
            annotation = info.annotation if info else Any
        else:
            return {}
        cur = cur[part] if isinstance(cur, (dict, list)) and _has(cur, part) else None
    annotation = _concrete(annotation, cur)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return dict(annotation.model_fields)
    return {}


def _has(container: Any, part: Any) -> bool:
    if isinstance(container, dict):
        return part in container
    return isinstance(part, int) and 0 <= part < len(container)


def _concrete(annotation: Any, data: Any) -> Any:
    """Unwrap Annotated/Optional/discriminated unions to the type that applies to `data`."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            tag = data.get("type") if isinstance(data, dict) else None
            match = [a for a in options if isinstance(a, type) and issubclass(a, Block)
                     and typing.get_args(a.model_fields["type"].annotation) == (tag,)]
            models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = (match or models or options or [Any])[0]
        else:
            return annotation


def _description(info: Any) -> str | None:
    """A field's description, looking inside Optional[Annotated[..., Field(description=...)]]."""
    if info is None:
        return None
    if info.description:
        return info.description
    pending = [info.annotation]
    while pending:
        annotation = pending.pop()
        for arg in typing.get_args(annotation):
            if isinstance(arg, FieldInfo) and arg.description:
                return arg.description
            pending.append(arg)
    return None


def _translate(err: dict, loaded: LoadedSpec, model_cls: type[BaseModel], plugins: Plugins) -> Problem:
    kind = err["type"]
    path = _clean_path(loaded.data, err["loc"])
    value = err.get("input")
    ctx = err.get("ctx") or {}

    if kind == "missing":
        return loaded.problem(path, f"missing required key '{path[-1]}'")
    if kind == "extra_forbidden":
        allowed = _model_fields_at(model_cls, loaded.data, path[:-1])
        hint = did_you_mean(path[-1], allowed) or (
            f"allowed keys: {', '.join(allowed)}" if allowed else None)
        if not path[:-1] and path[-1] not in allowed:
            hint = did_you_mean(path[-1], allowed) or (
                "a plugin section? install or enable the plugin that provides it")
        return loaded.problem(path, f"unknown key '{path[-1]}'", hint=hint, key=True)
    if kind == "union_tag_invalid":
        known = sorted(plugins.block_types)
        return loaded.problem((*path, "type"), f"unknown block type '{ctx.get('tag')}'",
                              hint=did_you_mean(ctx.get("tag"), known) or f"known types: {', '.join(known)}")
    if kind == "union_tag_not_found":
        return loaded.problem(path, "block has no 'type'",
                              hint=f"known types: {', '.join(sorted(plugins.block_types))}")

    if kind in ("model_type", "model_attributes_type", "dict_type"):
        if ctx.get("class_name") == "Link":
            return loaded.problem(path, f"a link is a page id or a mapping with one of 'page', 'phone', 'url' or "
                                        f"'store', got {_describe(value)}")
        return loaded.problem(path, f"expected a mapping of keys to values, got {_describe(value)}",
                              hint="write 'key: value' lines indented under it")
    if kind == "list_type":
        return loaded.problem(path, f"expected a list, got {_describe(value)}",
                              hint="write each item on its own line starting with '- '")
    if kind == "string_type" and isinstance(value, (dict, list)):
        return loaded.problem(path, f"expected text, got {_describe(value)}",
                              hint="put the text in quotes: YAML reads [...] as a list and 'a: b' as a mapping")

    message = err["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    hint = None
    if kind == "string_pattern_mismatch":
        description = _description(_model_fields_at(model_cls, loaded.data, path[:-1]).get(path[-1]))
        message = f"{value!r} is not in the expected format"
        hint = f"expected {description}" if description else None
    elif kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        message = f"needs {bound} {limit} item{'s' if limit != 1 else ''}, got {ctx.get('actual_length')}"
    elif value is not None and not isinstance(value, (dict, list)) and kind != "value_error":
        message += f", got {_describe(value)}"
    return loaded.problem(path, message, hint=hint)


def _describe(value: Any) -> str:
    """How a wrongly typed value reads in a message: 'a list', 'a mapping', or its repr."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"  # as YAML spells it
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
