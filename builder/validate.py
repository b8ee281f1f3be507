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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, ValidationError, create_model

from .errors import Problem, SpecError, did_you_mean
from .hooks import plugin_output_to_stderr
from .model import Block, BlockType, LoadedSpec, PathKey, ValidSpec
from .spec_models import AssetPath, CoreSpec, Link, Page, Ref, WebUrl, field_description

REFERENCE_TYPES = (Link, Ref, AssetPath, WebUrl)
_LEAVES = frozenset({str, int, float, bool, type(None)})  # exact types: reference markers subclass str


@dataclass
class ValidateMemo:
    """The validate stage's part of a BuildSession, for the pages of the last spec.

    `pages`: validated page models by the identity of their loaded data. The loader
    returns the very same dict for a page whose text did not change (see page_chunks),
    and pydantic takes an instance of a field's own model class without validating it
    again; validation is a pure function of the data, so the result is the same.
    `references`: the references found in each page model, by the model's identity,
    with paths relative to the page. Each entry keeps its key object alive, so an id
    is never reused by another object while it is in the memo.
    """

    pages: dict[int, tuple[Any, BaseModel]] = field(default_factory=dict)
    references: dict[int, tuple[BaseModel, list[tuple[PathKey, Any]]]] = field(default_factory=dict)


def asset_references(spec: ValidSpec) -> list[tuple[PathKey, AssetPath]]:
    """Every asset file the build uses, with where: the spec's asset fields (core and
    plugin sections alike), then those of the pages plugins add (paths pages[i] past the
    spec's own pages). These and no other files of the assets folder are copied."""
    found = [(path, ref) for path, ref in spec.references if isinstance(ref, AssetPath)]
    for i in range(len(spec.model.pages), len(spec.pages)):
        added: list[tuple[PathKey, Any]] = []
        _collect_references(spec.pages[i], ("pages", i), added)
        found += [(path, ref) for path, ref in added if isinstance(ref, AssetPath)]
    return found


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
                              blocks=(list[block_union], Field(default_factory=list)))
    fields: dict[str, Any] = {
        "pages": (list[page_model], Field(min_length=1)),
        "requires": (dict[str, str] | None, None),
        "plugins": (list[str] | None, None),
    }
    for key, model in sections:
        fields[key] = (model | None, None)
    return create_model("Spec", __base__=CoreSpec, __module__=__name__, **fields)


def validate_spec(loaded: LoadedSpec, block_types: dict[str, BlockType], sections: dict[str, type[BaseModel]],
                  memo: ValidateMemo | None = None,
                  disabled_owner: Callable[[str], str | None] | None = None) -> ValidSpec:
    """Validate the loaded data against the core and plugin models; raise SpecError
    listing every problem found. Cross-references are checked later, once plugins have
    added their pages and reference targets."""
    memo = memo or ValidateMemo()
    model_cls = spec_model(tuple(block_types.values()), tuple(sorted(sections.items())))
    if not isinstance(loaded.data, dict):
        raise SpecError([loaded.problem((), "the spec must be a mapping of sections",
                                        hint="start from 'mpforge new'")])
    try:
        with plugin_output_to_stderr():  # plugins' models run their validators
            model = model_cls.model_validate(_with_validated_pages(loaded.data, model_cls, memo))
    except ValidationError as exc:
        raise SpecError([_translate(err, loaded, model_cls, block_types, disabled_owner)
                         for err in exc.errors()]) from None
    assert isinstance(model, CoreSpec)  # spec_model derives from it
    memo.pages = {id(raw): (raw, page) for raw, page in zip(loaded.data["pages"], model.pages, strict=True)}
    return ValidSpec(loaded=loaded, model=model, block_types=dict(block_types), pages=list(model.pages),
                     references=_references(model, memo))


def _references(model: CoreSpec, memo: ValidateMemo) -> list[tuple[PathKey, Any]]:
    """Every Link and reference marker in the spec's sections, with its path."""
    found: list[tuple[PathKey, Any]] = []
    by_page: dict[int, tuple[BaseModel, list[tuple[PathKey, Any]]]] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if name != "pages":
            _collect_references(value, (name,), found)
            continue
        for i, page in enumerate(value):
            known = memo.references.get(id(page))
            if known is None or known[0] is not page:  # a page validated afresh
                known = (page, [])
                _collect_references(page, (), known[1])
            by_page[id(page)] = known
            found.extend((("pages", i, *path), ref) for path, ref in known[1])
    memo.references = by_page
    return found


def _with_validated_pages(data: dict[str, Any], model_cls: type[BaseModel], memo: ValidateMemo) -> dict[str, Any]:
    pages = data.get("pages")
    if not isinstance(pages, list) or not memo.pages:
        return data
    page_cls = typing.get_args(model_cls.model_fields["pages"].annotation)[0]
    reused = []
    for raw in pages:
        known = memo.pages.get(id(raw))
        reused.append(known[1] if known and known[0] is raw and type(known[1]) is page_cls else raw)
    return {**data, "pages": reused}


# --- turning pydantic errors into located problems ------------------------------------

def _clean_path(data: Any, loc: tuple[str | int, ...]) -> PathKey:
    """Drop pydantic's union tags from `loc` so it matches the spec's own structure."""
    path: list[str | int] = []
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
        cur = cur[part] if isinstance(cur, (dict, list)) and _has(cur, part) else None  # type: ignore[index]
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


def _translate(err: Any, loaded: LoadedSpec, model_cls: type[BaseModel], block_types: dict[str, BlockType],
               disabled_owner: Callable[[str], str | None] | None = None) -> Problem:
    kind = err["type"]
    path = _clean_path(loaded.data, err["loc"])
    value = err.get("input")
    ctx = err.get("ctx") or {}

    if kind == "missing":
        return loaded.problem(path, f"missing required key '{path[-1]}'")
    if kind == "extra_forbidden":
        allowed = _model_fields_at(model_cls, loaded.data, path[:-1])
        hint = did_you_mean(str(path[-1]), allowed) or (
            f"allowed keys: {', '.join(allowed)}" if allowed else None)
        if not path[:-1] and path[-1] not in allowed:
            hint = did_you_mean(str(path[-1]), allowed) or (
                "a plugin section? install or enable the plugin that provides it")
        return loaded.problem(path, f"unknown key '{path[-1]}'", hint=hint, key=True)
    if kind == "union_tag_invalid":
        known = sorted(block_types)
        owner = disabled_owner(str(ctx.get("tag"))) if disabled_owner else None
        if owner:
            return loaded.problem((*path, "type"), f"block type '{ctx.get('tag')}' comes from the '{owner}' plugin, "
                                                   "which is disabled",
                                  hint=f"drop --disable-plugin {owner}, or remove the block")
        return loaded.problem((*path, "type"), f"unknown block type '{ctx.get('tag')}'",
                              hint=did_you_mean(str(ctx.get("tag")), known) or f"known types: {', '.join(known)}")
    if kind == "union_tag_not_found":
        return loaded.problem(path, "block has no 'type'",
                              hint=f"known types: {', '.join(sorted(block_types))}")

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
        description = field_description(_model_fields_at(model_cls, loaded.data, path[:-1]).get(str(path[-1])))
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
