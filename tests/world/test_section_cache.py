"""A demo section's tables kept by content (issue 19.3): read back equal, recomputed when an input changes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from shiftlab.workspace import Workspace
from shiftlab.world.section_cache import cached_tables, content_key


def test_tables_come_back_equal_and_a_changed_input_recomputes(tmp_path):
    ws = Workspace.resolve(tmp_path / "ws")
    calls = []
    tables = (pd.DataFrame({"rank": [1, 2], "id": ["a", "007"], "p": [0.1 + 0.2, np.nextafter(1.0, 0)],
                            "flag": [True, False]}),
              pd.DataFrame({"model": ["m"], "AP": [0.987654321]}))

    def compute():
        calls.append(1)
        return tables

    key = content_key(ws, [], [SimpleNamespace(content_hash="h1")], "settings", 3)
    first = cached_tables(ws, "study", key, compute)
    again = cached_tables(ws, "study", key, compute)
    assert len(calls) == 1
    for a, b in zip(again, tables):
        pd.testing.assert_frame_equal(a, b)  # values to the last bit, dtypes (int, str, float, bool) and order
    assert first is tables or all(x.equals(y) for x, y in zip(first, tables))
    for other in (content_key(ws, [], [SimpleNamespace(content_hash="h2")], "settings", 3),
                  content_key(ws, [], [SimpleNamespace(content_hash="h1")], "settings", 4)):
        assert other != key
        cached_tables(ws, "study", other, compute)
    assert len(calls) == 3
