"""Packing, unpacking and Hamming kernels of ordhash.codes."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ordhash import codes as C


def _bits(n_rows, n_bits, seed=0):
    return np.random.default_rng(seed).integers(0, 2, size=(n_rows, n_bits), dtype=np.uint8)


@st.composite
def bit_matrices(draw, max_rows=12, max_bits=200):
    n_bits = draw(st.integers(1, max_bits))
    n_rows = draw(st.integers(0, max_rows))
    return draw(arrays(np.uint8, (n_rows, n_bits), elements=st.integers(0, 1)))


@settings(max_examples=60, deadline=None)
@given(bit_matrices())
def test_pack_unpack_round_trip(bits):
    packed = C.pack_bits(bits)
    assert packed.dtype == np.uint8
    assert packed.shape == (bits.shape[0], C.code_size(bits.shape[1]))
    np.testing.assert_array_equal(C.unpack_bits(packed, bits.shape[1]), bits)


@settings(max_examples=40, deadline=None)
@given(bit_matrices())
def test_signs_round_trip(bits):
    signs = C.bits_to_signs(bits)
    assert set(np.unique(signs)) <= {-1, 1}
    np.testing.assert_array_equal(C.signs_to_bits(signs), bits)
    n = bits.shape[1]
    np.testing.assert_array_equal(C.unpack_signs(C.pack_signs(signs), n), signs)


def test_layout_is_faiss_binary_layout():
    import faiss

    bits = _bits(20, 24, seed=3)
    packed = C.pack_bits(bits)
    # bit j lives in byte j // 8 at position j % 8
    for j in range(24):
        np.testing.assert_array_equal((packed[:, j // 8] >> (j % 8)) & 1, bits[:, j])
    # faiss' own unpacking of the same bytes gives the same bits
    real = np.empty((20, 24), dtype=np.float32)
    faiss.binary_to_real(20 * 24, faiss.swig_ptr(packed), faiss.swig_ptr(real))
    np.testing.assert_array_equal((real > 0).astype(np.uint8), bits)


def test_padding_bits_are_zero():
    packed = C.pack_bits(np.ones((3, 9), dtype=np.uint8))
    np.testing.assert_array_equal(packed[:, 1], 1)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 300),
    st.integers(0, 9),
    st.integers(0, 17),
    st.integers(0, 2**32 - 1),
)
def test_pairwise_equals_bitwise_count(n_bits, nq, nb, seed):
    rng = np.random.default_rng(seed)
    q = C.pack_bits(rng.integers(0, 2, (nq, n_bits)))
    b = C.pack_bits(rng.integers(0, 2, (nb, n_bits)))
    ref = np.bitwise_count(q[:, None, :] ^ b[None, :, :]).sum(-1)
    got = C.hamming_distances(q, b)
    assert got.dtype == np.int32 and got.shape == (nq, nb)
    np.testing.assert_array_equal(got, ref)
    if nq:
        np.testing.assert_array_equal(C.hamming_to_one(q[0], b), ref[0])
        m = min(nq, nb)
        np.testing.assert_array_equal(C.hamming_distance_rows(q[:m], b[:m]), ref[np.arange(m), np.arange(m)])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 130), st.integers(0, 2**32 - 1))
def test_hamming_is_a_metric(n_bits, seed):
    rng = np.random.default_rng(seed)
    x = C.pack_bits(rng.integers(0, 2, (3, n_bits)))
    d = C.hamming_distances(x, x)
    assert (np.diag(d) == 0).all()
    np.testing.assert_array_equal(d, d.T)
    assert d[0, 2] <= d[0, 1] + d[1, 2]
    assert d.max() <= n_bits


def test_non_contiguous_and_sliced_inputs():
    bits = _bits(50, 128, seed=1)
    packed = C.pack_bits(bits)
    sliced = packed[::2]
    ref = np.bitwise_count(sliced[:, None] ^ packed[None]).sum(-1)
    np.testing.assert_array_equal(C.hamming_distances(sliced, packed), ref)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: C.pack_bits(np.array([[0, 2]])), ValueError, "only 0 and 1"),
        (lambda: C.pack_bits(np.array([0, 1])), ValueError, "2-D"),
        (lambda: C.pack_bits(np.array([[0.5, 1.0]])), TypeError, "integers"),
        (lambda: C.unpack_bits(np.zeros((2, 2), np.int32)), TypeError, "uint8"),
        (lambda: C.unpack_bits(np.zeros((2, 2), np.uint8), 20), ValueError, "n_bits=20"),
        (lambda: C.signs_to_bits(np.array([[0, 1]])), ValueError, "-1 and \\+1"),
        (lambda: C.code_size(0), ValueError, "n_bits must be >= 1"),
        (lambda: C.code_size(2.5), TypeError, "n_bits must be an integer"),
        (
            lambda: C.hamming_distances(np.zeros((1, 2), np.uint8), np.zeros((1, 3), np.uint8)),
            ValueError,
            "codes has 3 bytes per code, but 2",
        ),
        (lambda: C.hamming_distances(np.zeros((1, 2)), np.zeros((1, 2), np.uint8)), TypeError, "queries"),
        (lambda: C.hamming_to_one(np.zeros((1, 2), np.uint8), np.zeros((1, 2), np.uint8)), ValueError, "1-D"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_kernel_cache_loads_in_a_second_process(tmp_path):
    """The popcount intrinsic keeps kernels cacheable: a second process loads them from disk."""
    code = (
        "import numpy as np, ordhash.codes as C;"
        "from ordhash._kernels import hamming as H;"
        "x = np.arange(32, dtype=np.uint8).reshape(4, 8);"
        "C.hamming_distances(x, x);"
        "print(len(H.pairwise.stats.cache_hits), len(H.pairwise.stats.cache_misses))"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    hits1, _ = map(int, first.stdout.split())
    hits2, misses2 = map(int, second.stdout.split())
    assert hits1 == 0
    assert hits2 >= 1 and misses2 == 0
