"""``import shiftlab`` exposes the main entry points lazily: nothing heavy at import, every name resolvable."""

from __future__ import annotations

import subprocess
import sys

import pytest

import shiftlab


def test_import_shiftlab_loads_no_heavy_library():
    code = "import sys, shiftlab; print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", [n for n in shiftlab.__all__ if n != "__version__"])
def test_every_exported_name_is_the_object_its_module_defines(name):
    import importlib

    obj = getattr(shiftlab, name)
    assert obj is getattr(importlib.import_module(shiftlab._EXPORTS[name]), name)
    assert obj.__doc__, f"{name} has no docstring"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        shiftlab.nope  # noqa: B018
