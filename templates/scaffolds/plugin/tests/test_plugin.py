"""Tests for the __NAME__ plugin, using mpforge's own test fixture `mpforge_build`."""

import json

import pytest

from builder.errors import UserError
from builder.testing import page_spec

BLOCK = {"type": "__BLOCK__", "title": "Hello {{ friend }}", "text": "Show this at the counter"}


def test_block_renders_with_bound_text(mpforge_build):
    tree = mpforge_build(page_spec([BLOCK]), plugins=["__PACKAGE__"])
    axml = tree.text("pages/home/home.axml")
    assert '<text class="__PACKAGE__-title">{{b0.title}}</text>' in axml
    assert "friend" not in axml  # merchant text is bound, never printed
    assert '"title": "Hello {{ friend }}"' in tree.text("pages/home/home.js")
    assert ".__PACKAGE__-card" in tree.text("app.acss")
    assert json.loads(tree.text("app.json"))["pages"] == ["pages/home/home"]


def test_block_rejects_unknown_keys(mpforge_build):
    with pytest.raises(UserError) as info:
        mpforge_build(page_spec([{**BLOCK, "titel": "x"}]), plugins=["__PACKAGE__"])
    assert "unknown key 'titel'" in str(info.value)
