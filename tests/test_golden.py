"""The full generated tree of each sample, compared with approved files in tests/golden/.

After a deliberate change, regenerate with `MPFORGE_UPDATE_GOLDEN=1 pytest tests/test_golden.py`
and review the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
from helpers import REPO, SAMPLES

from builder.pipeline import prepare

GOLDEN = REPO / "tests" / "golden"
SAMPLE_NAMES = sorted(p.name for p in SAMPLES.iterdir() if (p / "mpforge.yaml").is_file())
UPDATE = os.environ.get("MPFORGE_UPDATE_GOLDEN") == "1"
BUILD_DATE = "1795564800"  # 2026-11-25: coupon expiry in the samples is judged as of this day


def expected_files(tree) -> dict[str, bytes]:
    """Generated text files as-is; copied assets as one checksum list (binary, and large)."""
    files = {path: data for path, data in tree.items() if not path.startswith("assets/")}
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {path}\n"
                   for path, data in tree.items() if path.startswith("assets/"))
    files["assets.sha256"] = sums.encode("utf-8")
    return files


def test_there_are_at_least_two_samples():
    assert len(SAMPLE_NAMES) >= 2


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_sample_matches_golden(sample, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", BUILD_DATE)
    actual = expected_files(prepare(SAMPLES / sample).tree)
    folder = GOLDEN / sample
    if UPDATE:
        shutil.rmtree(folder, ignore_errors=True)
        for path, data in actual.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_bytes(data)
    expected = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert sorted(actual) == sorted(expected), "generated file list changed"
    for path in sorted(actual):
        assert actual[path].decode("utf-8") == expected[path].decode("utf-8"), f"{sample}/{path} differs"
