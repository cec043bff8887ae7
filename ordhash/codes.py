"""Binary codes: packing, unpacking and Hamming distances.

Layout
------
A code of ``n_bits`` bits is stored as ``ceil(n_bits / 8)`` bytes; bit ``j`` lives in byte
``j // 8`` at bit position ``j % 8`` (least significant first). This is the layout of
``faiss.IndexBinary*`` and of ``np.packbits(..., bitorder="little")``, so packed codes go
straight into faiss. Unused bits of the last byte are zero, so they never add to a distance.

Three representations are supported: ``{0, 1}`` bits, ``{-1, +1}`` signs and packed ``uint8``
rows. Hamming distances run in Numba kernels that use the ``llvm.ctpop`` popcount, viewing rows
as 64- or 32-bit words when the code size allows it, parallel over queries.
"""

from __future__ import annotations

import numpy as np

from ._kernels import hamming as _hk
from ._validation import check_codes, check_int

__all__ = [
    "code_size",
    "pack_bits",
    "unpack_bits",
    "pack_signs",
    "unpack_signs",
    "bits_to_signs",
    "signs_to_bits",
    "as_words",
    "hamming_distances",
    "hamming_distance_rows",
    "hamming_to_one",
]


def code_size(n_bits):
    """Number of bytes of one packed code of ``n_bits`` bits: ``ceil(n_bits / 8)``.

    Parameters
    ----------
    n_bits : int
        Bits per code, at least 1.

    Returns
    -------
    int

    Examples
    --------
    >>> from ordhash.codes import code_size
    >>> code_size(64), code_size(65)
    (8, 9)
    """
    n_bits = check_int(n_bits, "n_bits", min_value=1)
    return (n_bits + 7) // 8


def _check_bits(bits, name):
    arr = np.asarray(bits)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_codes, n_bits), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 bits per code (shape {arr.shape})")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers 0/1 or booleans, got dtype {arr.dtype}")
    if arr.size and ((arr != 0) & (arr != 1)).any():
        raise ValueError(f"{name} must contain only 0 and 1")
    return arr


def pack_bits(bits):
    """Pack ``{0, 1}`` bits into ``uint8`` rows.

    Parameters
    ----------
    bits : array-like of shape (n_codes, n_bits)
        Booleans or integers 0/1.

    Returns
    -------
    codes : ndarray of shape (n_codes, ceil(n_bits / 8)), dtype uint8

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.codes import pack_bits, unpack_bits
    >>> codes = pack_bits(np.array([[1, 0, 1, 1, 0, 0, 0, 0, 1]]))
    >>> codes
    array([[13,  1]], dtype=uint8)
    >>> unpack_bits(codes, 9)
    array([[1, 0, 1, 1, 0, 0, 0, 0, 1]], dtype=uint8)
    """
    arr = _check_bits(bits, "bits")
    return np.packbits(arr.astype(bool, copy=False), axis=1, bitorder="little")


def unpack_bits(codes, n_bits=None):
    """Unpack ``uint8`` rows into ``{0, 1}`` bits of dtype ``uint8``.

    Parameters
    ----------
    codes : ndarray of shape (n_codes, code_size), dtype uint8
    n_bits : int, optional
        Number of bits per code; defaults to ``8 * code_size``. Must satisfy
        ``code_size(n_bits) == codes.shape[1]``.

    Returns
    -------
    bits : ndarray of shape (n_codes, n_bits), dtype uint8

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.codes import unpack_bits
    >>> unpack_bits(np.array([[5, 1]], np.uint8), n_bits=10)
    array([[1, 0, 1, 0, 0, 0, 0, 0, 1, 0]], dtype=uint8)
    """
    codes = check_codes(codes, "codes", allow_empty=True)
    if n_bits is None:
        n_bits = 8 * codes.shape[1]
    n_bits = check_int(n_bits, "n_bits", min_value=1)
    if code_size(n_bits) != codes.shape[1]:
        raise ValueError(
            f"n_bits={n_bits} needs {code_size(n_bits)} bytes per code, "
            f"but codes have {codes.shape[1]}"
        )
    return np.unpackbits(codes, axis=1, count=n_bits, bitorder="little")


def bits_to_signs(bits):
    """Map ``{0, 1}`` bits to ``{-1, +1}`` signs (``int8``).

    Parameters
    ----------
    bits : array-like of shape (n_codes, n_bits)
        Booleans or integers 0/1.

    Returns
    -------
    signs : ndarray of shape (n_codes, n_bits), dtype int8

    Examples
    --------
    >>> from ordhash.codes import bits_to_signs
    >>> bits_to_signs([[1, 0, 1]])
    array([[ 1, -1,  1]], dtype=int8)
    """
    arr = _check_bits(bits, "bits")
    return (2 * arr.astype(np.int8) - 1).astype(np.int8)


def signs_to_bits(signs):
    """Map ``{-1, +1}`` signs to ``{0, 1}`` bits (``uint8``); a sign must be exactly -1 or +1.

    Parameters
    ----------
    signs : array-like of shape (n_codes, n_bits)
        Numbers, each exactly -1 or +1.

    Returns
    -------
    bits : ndarray of shape (n_codes, n_bits), dtype uint8

    Examples
    --------
    >>> from ordhash.codes import signs_to_bits
    >>> signs_to_bits([[1, -1, -1]])
    array([[1, 0, 0]], dtype=uint8)
    """
    arr = np.asarray(signs)
    if arr.ndim != 2:
        raise ValueError(f"signs must be 2-D (n_codes, n_bits), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"signs must be numeric, got dtype {arr.dtype}")
    if arr.size and ((arr != 1) & (arr != -1)).any():
        raise ValueError("signs must contain only -1 and +1")
    return (arr > 0).astype(np.uint8)


def pack_signs(signs):
    """Pack ``{-1, +1}`` signs into ``uint8`` rows (+1 becomes bit 1).

    Parameters
    ----------
    signs : array-like of shape (n_codes, n_bits)
        Numbers, each exactly -1 or +1.

    Returns
    -------
    codes : ndarray of shape (n_codes, ceil(n_bits / 8)), dtype uint8

    Examples
    --------
    >>> from ordhash.codes import pack_signs
    >>> pack_signs([[1, -1, 1, 1]])
    array([[13]], dtype=uint8)
    """
    return pack_bits(signs_to_bits(signs))


def unpack_signs(codes, n_bits=None):
    """Unpack ``uint8`` rows into ``{-1, +1}`` signs of dtype ``int8``.

    Parameters
    ----------
    codes : ndarray of shape (n_codes, code_size), dtype uint8
    n_bits : int, optional
        Number of bits per code; defaults to ``8 * code_size``.

    Returns
    -------
    signs : ndarray of shape (n_codes, n_bits), dtype int8

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.codes import unpack_signs
    >>> unpack_signs(np.array([[13]], np.uint8), n_bits=4)
    array([[ 1, -1,  1,  1]], dtype=int8)
    """
    return bits_to_signs(unpack_bits(codes, n_bits))


def as_words(codes):
    """View packed codes as the widest unsigned words the row length allows (no copy).

    Parameters
    ----------
    codes : ndarray of shape (n_codes, code_size), dtype uint8

    Returns
    -------
    words : ndarray
        A C-contiguous ``uint64`` view of shape ``(n_codes, code_size // 8)`` when
        ``code_size % 8 == 0``, ``uint32`` of shape ``(n_codes, code_size // 4)`` when
        ``code_size % 4 == 0``, and the ``uint8`` array itself otherwise (a contiguous copy
        if ``codes`` was not C-contiguous).

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.codes import as_words
    >>> as_words(np.zeros((3, 16), np.uint8)).dtype, as_words(np.zeros((3, 12), np.uint8)).shape
    (dtype('uint64'), (3, 3))
    """
    codes = np.ascontiguousarray(codes)
    size = codes.shape[1]
    if size % 8 == 0:
        return codes.view(np.uint64)
    if size % 4 == 0:
        return codes.view(np.uint32)
    return codes


def hamming_distances(queries, codes):
    """Hamming distances between every query and every code.

    Parameters
    ----------
    queries : ndarray of shape (n_queries, code_size), dtype uint8
    codes : ndarray of shape (n_codes, code_size), dtype uint8

    Returns
    -------
    distances : ndarray of shape (n_queries, n_codes), dtype int32
        Equal to ``np.bitwise_count(queries[:, None] ^ codes[None]).sum(-1)``.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.codes import hamming_distances
    >>> hamming_distances(np.array([[0b1011]], np.uint8), np.array([[0], [255]], np.uint8))
    array([[3, 5]], dtype=int32)
    """
    queries = check_codes(queries, "queries", allow_empty=True)
    codes = check_codes(codes, "codes", code_size=queries.shape[1], allow_empty=True)
    return _hk.pairwise(as_words(queries), as_words(codes))


def hamming_distance_rows(a, b):
    """Hamming distance between row ``i`` of ``a`` and row ``i`` of ``b``, for every ``i``.

    Parameters
    ----------
    a : ndarray of shape (n, code_size), dtype uint8
    b : ndarray of shape (n, code_size), dtype uint8

    Returns
    -------
    distances : ndarray of shape (n,), dtype int32

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.codes import hamming_distance_rows
    >>> hamming_distance_rows(np.array([[0], [7]], np.uint8), np.array([[1], [7]], np.uint8))
    array([1, 0], dtype=int32)
    """
    a = check_codes(a, "a", allow_empty=True)
    b = check_codes(b, "b", code_size=a.shape[1], allow_empty=True)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same number of rows, got {a.shape[0]} and {b.shape[0]}")
    return _hk.rowwise(as_words(a), as_words(b))


def hamming_to_one(query, codes):
    """Distances from one packed code (1-D ``uint8``) to every row of ``codes``.

    Parameters
    ----------
    query : ndarray of shape (code_size,), dtype uint8
    codes : ndarray of shape (n_codes, code_size), dtype uint8

    Returns
    -------
    distances : ndarray of shape (n_codes,), dtype int32

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.codes import hamming_to_one
    >>> hamming_to_one(np.array([3], np.uint8), np.array([[0], [3], [255]], np.uint8))
    array([2, 0, 6], dtype=int32)
    """
    q = np.asarray(query)
    if q.ndim != 1:
        raise ValueError(f"query must be one 1-D packed code, got shape {q.shape}")
    q = check_codes(q[None, :], "query")
    codes = check_codes(codes, "codes", code_size=q.shape[1], allow_empty=True)
    return _hk.one_to_many(as_words(q)[0], as_words(codes))
