"""Conversion between ordhash Hamming indexes and faiss binary indexes."""

from __future__ import annotations

import numpy as np

from .flat import HammingIndex
from .mih import MultiIndexHashing

__all__ = ["to_faiss", "from_faiss"]


def to_faiss(index):
    """A faiss ``IndexBinaryIDMap2`` over an ``IndexBinaryFlat`` holding the same codes and ids.

    Parameters
    ----------
    index : HammingIndex or MultiIndexHashing

    Returns
    -------
    faiss.IndexBinaryIDMap2
        Dimension ``8 * code_size`` (faiss counts whole bytes; the zero padding bits of an
        ``n_bits`` that is not a multiple of 8 do not change any distance). Codes are added
        in increasing id order, so faiss breaks ties at the k-th distance the same way.
        faiss's ``range_search(q, r)`` is strict (distance ``< r``); ordhash's is inclusive.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.index import HammingIndex, to_faiss
    >>> index = HammingIndex(16)
    >>> index.add(np.array([[1, 2], [3, 4]], dtype=np.uint8), ids=[7, 9])
    >>> fx = to_faiss(index)
    >>> fx.ntotal, fx.d
    (2, 16)
    >>> fx.search(np.array([[3, 4]], dtype=np.uint8), 1)[1]
    array([[9]])
    """
    if not isinstance(index, (HammingIndex, MultiIndexHashing)):
        raise TypeError(
            f"index must be a HammingIndex or MultiIndexHashing, got {type(index).__name__}"
        )
    import faiss

    ids = np.array(index.ids, dtype=np.int64)
    flat = faiss.IndexBinaryFlat(8 * index.code_size)
    out = faiss.IndexBinaryIDMap2(flat)
    out.own_fields = True
    flat.this.disown()  # the wrapper owns (and frees) the flat index
    if ids.shape[0]:
        out.add_with_ids(np.ascontiguousarray(index.reconstruct(ids)), ids)
    return out


def _flat_codes(flat, faiss):
    return faiss.vector_to_array(flat.xb).reshape(flat.ntotal, flat.code_size)


def from_faiss(faiss_index, *, n_bits=None, backend="numba", n_jobs=None):
    """A :class:`HammingIndex` with the codes and ids of a faiss binary index.

    Parameters
    ----------
    faiss_index : faiss.IndexBinaryFlat, IndexBinaryIDMap or IndexBinaryIDMap2
        A flat binary index, or an id map wrapping one. Positions become the ids of a bare
        ``IndexBinaryFlat``.
    n_bits : int, optional
        Bits per code (``<= faiss_index.d``, the padding bits must be zero). Default:
        ``faiss_index.d``.
    backend, n_jobs
        Passed to :class:`HammingIndex`.

    Returns
    -------
    HammingIndex

    Raises
    ------
    TypeError
        For any other faiss index type (IVF, HNSW, hash...), which does not hold every code
        in a readable flat array, or for a non-faiss object.
    ValueError
        If the id map holds negative or duplicate ids.

    Examples
    --------
    >>> import faiss
    >>> import numpy as np
    >>> from ordhash.index import from_faiss
    >>> fx = faiss.IndexBinaryFlat(16)
    >>> fx.add(np.array([[1, 2], [3, 4]], dtype=np.uint8))
    >>> index = from_faiss(fx)
    >>> index.ids, index.n_bits
    (array([0, 1]), 16)
    """
    import faiss

    if not isinstance(faiss_index, faiss.IndexBinary):
        raise TypeError(
            "faiss_index must be a faiss binary index (IndexBinaryFlat or an IndexBinaryIDMap "
            f"wrapping one), got {type(faiss_index).__name__}"
        )
    index = faiss.downcast_IndexBinary(faiss_index)
    if isinstance(index, (faiss.IndexBinaryIDMap, faiss.IndexBinaryIDMap2)):
        inner = faiss.downcast_IndexBinary(index.index)
        if not isinstance(inner, faiss.IndexBinaryFlat):
            raise TypeError(
                f"{type(index).__name__} wraps a {type(inner).__name__}; only a wrapped "
                "IndexBinaryFlat can be converted"
            )
        codes = _flat_codes(inner, faiss)
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    elif isinstance(index, faiss.IndexBinaryFlat):
        codes = _flat_codes(index, faiss)
        ids = np.arange(index.ntotal, dtype=np.int64)
    else:
        raise TypeError(
            f"cannot convert a faiss {type(index).__name__}: only IndexBinaryFlat and "
            "IndexBinaryIDMap/IndexBinaryIDMap2 wrapping an IndexBinaryFlat hold their codes "
            "in a flat array"
        )
    out = HammingIndex(index.d if n_bits is None else n_bits, backend=backend, n_jobs=n_jobs)
    if out.code_size != index.code_size:
        raise ValueError(
            f"n_bits={out.n_bits} needs {out.code_size}-byte codes, but the faiss index holds "
            f"{index.code_size}-byte codes"
        )
    out.add(codes, ids)
    return out
