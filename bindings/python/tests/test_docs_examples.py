"""Every ```python block of docs/integrations.md runs as written from the repository root.

A block followed by ``Output:`` and a ```text block must print exactly that.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from helpers import ROOT

DOC = ROOT / "docs" / "integrations.md"
BLOCKS = re.findall(r"```python\n(.*?)```\n(?:\nOutput:\n\n```text\n(.*?)```)?", DOC.read_text(), flags=re.S)


def test_doc_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_example_runs(i):
    code, want = BLOCKS[i]
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    if want:
        assert r.stdout == want, f"printed:\n{r.stdout}\ndocumented:\n{want}"
