"""Unit tests of the load and validate stages: locations, limits, error translation."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from builder.errors import SpecError
from builder.load import Mark, format_path, parse_spec
from builder.pipeline import load_plugins
from builder.validate import validate_spec


def parse(text: str, name: str = "mpforge.yaml"):
    return parse_spec(text.encode("utf-8"), Path(name))


def _validate(loaded):
    hooks = load_plugins()
    return validate_spec(loaded, hooks.block_types, hooks.sections)


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        _validate(parse(text))
    return [str(p) for p in info.value.problems]


VALID_HEAD = "spec_version: 1\napp: {name: Shop}\nmerchant: {name: Shop}\n"


def test_every_value_and_key_is_located():
    spec = parse("app:\n  name: Shop\npages:\n  - id: home\n    blocks:\n      - type: text\n")
    assert spec.values[("app", "name")] == Mark(2, 9)
    assert spec.keys[("app", "name")] == Mark(2, 3)
    assert spec.values[("pages", 0, "blocks", 0, "type")] == Mark(6, 15)
    # A path that does not exist falls back to its closest located parent.
    assert spec.mark(("pages", 0, "blocks", 0, "text")) == Mark(6, 9)


def test_format_path():
    assert format_path(("pages", 2, "blocks", 0, "type")) == "pages[2].blocks[0].type"
    assert format_path(()) == ""


def test_json_specs_are_located_too():
    spec = parse('{\n  "app": {\n    "name": "Shop"\n  }\n}\n', "shop.json")
    assert spec.values[("app", "name")] == Mark(3, 13)


@pytest.mark.parametrize("text, message", [
    ("a: 1\na: 2\n", "mpforge.yaml:2:1: a: duplicate key 'a' (first defined at line 1, column 1)"),
    ("a:\n  b: 1\n  b: 2\n", "mpforge.yaml:3:3: a.b: duplicate key 'b' (first defined at line 2, column 3)"),
    ("a:\n\t- b\n", "(YAML indentation must use spaces, not tabs)"),
    ("a: [1,\n", "mpforge.yaml:2:1: YAML syntax error"),
    ("", "mpforge.yaml:1:1: spec is empty"),
    ("base: &b {x: 1}\nother:\n  <<: *b\n", "mpforge.yaml:3:3: other: YAML merge keys (<<) are not supported"),
    ("app: !!python/object:os.system x\n", "mpforge.yaml:1:6: app: unsupported YAML tag"),
    # !!binary used to be decoded to bytes; !!bool and !!timestamp on other text crashed (exit 2).
    ("logo: !!binary aGk=\n", "mpforge.yaml:1:7: logo: unsupported YAML tag '!!binary' (remove the '!' tag)"),
    ("a: !!bool maybe\n", "mpforge.yaml:1:4: a: invalid boolean 'maybe': not true or false"),
    ("a: !!timestamp soon\n", "mpforge.yaml:1:4: a: invalid date 'soon': not a date"),
    ("a: !!int abc\n", "mpforge.yaml:1:4: a: invalid number 'abc': not a number"),
])
def test_load_errors(text, message):
    with pytest.raises(SpecError) as info:
        parse(text)
    assert message in str(info.value)


def test_alias_bomb_is_refused_fast():
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        parse("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 5
    assert "expands to more than" in str(info.value)


def test_block_type_named_like_its_field_keeps_a_clean_path():
    # The 'image' block has an 'image' field: pydantic's loc is (..., 'image', 'image').
    text = VALID_HEAD + "pages:\n  - id: home\n    title: H\n    blocks:\n      - {type: image, image: ../x.png}\n"
    assert problems(text) == [
        "mpforge.yaml:8:30: pages[0].blocks[0].image: must be a relative path inside the project "
        "(no '..', no leading '/', no backslashes or drive letters)"]


def test_all_schema_problems_are_reported_at_once():
    text = ("spec_version: 2\napp: {name: Shop, colour: red}\nmerchant: {name: Shop}\n"
            "pages:\n  - id: Home\n    title: H\n    blocks: [{type: heading}]\n")
    assert problems(text) == [
        "mpforge.yaml:1:15: spec_version: input should be 1, got 2",
        "mpforge.yaml:2:19: app.colour: unknown key 'colour' (allowed keys: name, appid, version, description, theme, window)",
        "mpforge.yaml:5:9: pages[0].id: 'Home' is not in the expected format "
        "(expected lower-case letters, digits, '-' and '_'; starts with a letter)",
        "mpforge.yaml:7:14: pages[0].blocks[0].text: missing required key 'text'",
    ]


def test_unknown_top_level_section_hints_at_plugins():
    assert problems(VALID_HEAD + "pages: [{id: home, title: H}]\nloyalty: []\n") == [
        "mpforge.yaml:5:1: loyalty: unknown key 'loyalty' "
        "(a plugin section? install or enable the plugin that provides it)"]


def test_warnings_do_not_stop_validation():
    spec = _validate(parse(VALID_HEAD + "pages: [{id: home, title: H}]\n"))
    assert [p.id for p in spec.pages] == ["home"] and spec.warnings == []


def test_explicit_tags_of_plain_types_still_work():
    assert parse("a: !!str 12\nb: !!int 12\nc: !!bool yes\n").data == {"a": "12", "b": 12, "c": True}


def test_a_byte_order_mark_is_accepted_and_positions_stay_right():
    """Editors on Windows save UTF-8 with a BOM; it used to be refused. It is not content:
    columns on the first line and the digest of what was built are as without it."""
    text = "app: {name: Shop, colour: red}\nb: 1\n"
    with_bom = parse_spec(b"\xef\xbb\xbf" + text.encode("utf-8"), Path("mpforge.yaml"))
    plain = parse(text)
    assert with_bom.data == plain.data and with_bom.values == plain.values and with_bom.keys == plain.keys
    assert with_bom.values[("app", "colour")] == Mark(1, 27)
    assert with_bom.sha256 != plain.sha256  # the digest is of the bytes as saved
    with pytest.raises(SpecError) as info:
        parse_spec(b"\xef\xbb\xbfa: 1\nb: \xff\n", Path("mpforge.yaml"))
    assert str(info.value) == "mpforge.yaml:2:4: invalid UTF-8 byte 0xff (save the file as UTF-8)"
    with pytest.raises(SpecError) as info:
        parse_spec(b"\xef\xbb\xbfa: \xff\n", Path("mpforge.yaml"))
    assert str(info.value).startswith("mpforge.yaml:1:4: invalid UTF-8 byte 0xff")


def test_a_spec_saved_with_a_byte_order_mark_builds_like_one_without(project):
    from builder.pipeline import prepare

    spec = project()
    plain = prepare(spec).tree
    spec.write_bytes(b"\xef\xbb\xbf" + spec.read_bytes())
    assert dict(prepare(spec).tree.items()) == dict(plain.items())


@pytest.mark.parametrize("value", ["banner.png", "tab/home-active.png", "logo@2x.png", "a_b.c.jpg", "console.png",
                                   "com10.png", "https://cdn.example.com/a.png"])
def test_asset_paths_accepted(value):
    from pydantic import TypeAdapter

    from builder.spec_models import Asset

    assert TypeAdapter(Asset).validate_python(value) == value


@pytest.mark.parametrize("value, message", [
    (".env", "hidden files are not assets: '.env' starts with '.'"),
    ("tab/.git/config", "hidden files are not assets: '.git' starts with '.'"),
    ("tab//home.png", "empty folder name in the path"),
    ("tab/", "empty folder name in the path"),
    ("logo photo.png", "'logo photo.png' has a character outside ASCII letters"),
    ("ｌｏｇｏ.png", "has a character outside ASCII letters"),
    ("x" * 256, "file or folder name is 256 bytes, over the 255 byte limit"),
    ("CON.png", "'CON.png' is a reserved file name on Windows"),
    ("lpt1/a.png", "'lpt1' is a reserved file name on Windows"),
])
def test_asset_paths_refused(value, message):
    from pydantic import TypeAdapter, ValidationError

    from builder.spec_models import Asset

    with pytest.raises(ValidationError, match=re.escape(message)):
        TypeAdapter(Asset).validate_python(value)


@pytest.mark.parametrize("page_id", ["con", "nul", "aux", "prn", "com1", "com9", "lpt0", "lpt3"])
def test_windows_device_names_are_not_page_ids(page_id):
    found = problems(VALID_HEAD + f"pages: [{{id: {page_id}, title: H}}]\n")
    assert found == [f"mpforge.yaml:4:14: pages[0].id: '{page_id}' is a reserved file name on Windows, where no file "
                     "or folder can have it; choose another name"]


@pytest.mark.parametrize("field, value", [
    ("appid", "20２１００４１２３４５６７８９"),  # fullwidth
    ("appid", "20٢١٠٠٤١٢٣٤٥٦٧٨٩"),  # Arabic-Indic
    ("version", "١.٠.٠"),
    ("version", "１.0.0"),
])
def test_only_ascii_digits_in_app_id_and_version(field, value):
    found = problems(f"spec_version: 1\napp: {{name: Shop, {field}: '{value}'}}\nmerchant: {{name: Shop}}\n"
                     "pages: [{id: home, title: H}]\n")
    assert len(found) == 1 and f"app.{field}: '{value}' is not in the expected format" in found[0]
