"""The top-level namespace: every advertised name resolves, and importing stays lazy."""

import subprocess
import sys

import pytest

import ordhash


@pytest.mark.parametrize("name", ordhash.__all__)
def test_every_public_name_resolves(name):
    if name == "distributed":  # an optional extra: ordhash[dask]
        pytest.importorskip("dask.array")
        pytest.importorskip("distributed")
    assert getattr(ordhash, name) is not None


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ordhash.nope


def test_import_is_lazy():
    code = "import sys, ordhash; print(sorted(m for m in ('numba', 'faiss', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_index_import_leaves_the_float_layer_for_later():
    code = (
        "import sys, ordhash.index as I; a = 'sklearn' in sys.modules; I.HashingSearcher; "
        "print(a, 'sklearn' in sys.modules, 'HashingSearcher' in dir(I))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]
