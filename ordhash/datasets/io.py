"""Readers and writers for the file formats of nearest-neighbour benchmarks.

* texmex ``.fvecs`` / ``.ivecs`` / ``.bvecs`` (http://corpus-texmex.irisa.fr): each row is a
  little-endian ``int32`` dimension ``d`` followed by ``d`` values (``float32``, ``int32`` or
  ``uint8``).
* MNIST IDX (plain or gzip'd): a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``,
  ``ndim`` big-endian ``uint32`` sizes, then the values in big-endian byte order.

The container formats (ann-benchmarks HDF5, MATLAB) live in :mod:`ordhash.datasets.containers`.

Every error about a file names the file.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from .._validation import check_int

__all__ = [
    "read_fvecs",
    "read_ivecs",
    "read_bvecs",
    "write_fvecs",
    "write_ivecs",
    "write_bvecs",
    "read_idx",
    "write_idx",
]

# --------------------------------------------------------------------------------------------
# texmex vecs
# --------------------------------------------------------------------------------------------

_VECS_DTYPES = {"fvecs": np.dtype("<f4"), "ivecs": np.dtype("<i4"), "bvecs": np.dtype("u1")}


def _as_path(path, name="path"):
    if isinstance(path, (str, os.PathLike)):
        return Path(path)
    raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")


def _read_vecs(path, kind, count, offset, mmap):
    path = _as_path(path)
    offset = check_int(offset, "offset", min_value=0)
    if count is not None:
        count = check_int(count, "count", min_value=0)
    if not isinstance(mmap, (bool, np.bool_)):
        raise TypeError(f"mmap must be a bool, got {mmap!r}")
    value_dtype = _VECS_DTYPES[kind]
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path} is empty: a {kind} file needs at least one row")
    if size < 4:
        raise ValueError(f"{path} is truncated: {size} bytes cannot hold a {kind} row header")
    with open(path, "rb") as fh:
        dim = int(np.frombuffer(fh.read(4), dtype="<i4")[0])
    row_bytes = 4 + dim * value_dtype.itemsize
    if dim <= 0 or row_bytes > size:
        raise ValueError(
            f"{path} is not a valid {kind} file: its first row declares dimension {dim}, "
            f"which does not fit a file of {size} bytes"
        )
    if size % row_bytes:
        n_full = size // row_bytes
        raise ValueError(
            f"{path} is truncated or corrupt: {size} bytes is not a whole number of rows of "
            f"{row_bytes} bytes (dimension {dim}); {n_full} full rows and "
            f"{size - n_full * row_bytes} stray bytes"
        )
    n_rows = size // row_bytes
    if offset > n_rows:
        raise ValueError(f"offset={offset} is past the end of {path}, which has {n_rows} rows")
    if count is None:
        count = n_rows - offset
    elif offset + count > n_rows:
        raise ValueError(
            f"offset={offset} + count={count} exceeds the {n_rows} rows of {path}"
        )
    unit = np.dtype("u1") if kind == "bvecs" else value_dtype
    per_row = row_bytes // unit.itemsize
    start = offset * row_bytes
    if mmap:
        if count == 0:
            raw = np.empty((0, per_row), dtype=unit)
        else:
            raw = np.memmap(path, dtype=unit, mode="r", offset=start, shape=(count, per_row))
    else:
        raw = np.fromfile(path, dtype=unit, count=count * per_row, offset=start)
        raw = raw.reshape(count, per_row)
    if kind == "bvecs":
        headers = np.ascontiguousarray(raw[:, :4]).view("<i4").ravel()
        values = raw[:, 4:]
    else:
        headers = raw[:, 0].view("<i4")
        values = raw[:, 1:]
    bad = np.flatnonzero(headers != dim)
    if bad.size:
        row = offset + int(bad[0])
        raise ValueError(
            f"{path} is corrupt: row {row} declares dimension {int(headers[bad[0]])} but row 0 "
            f"declares {dim}; every row of a {kind} file must have the same dimension"
        )
    if kind != "bvecs":
        values = values.view(value_dtype)
    if mmap:
        return values
    return np.ascontiguousarray(values)


_READ_DOC = """Read a texmex ``.{kind}`` file into a ``({n}, d)`` array of dtype ``{dtype}``.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Each row is a little-endian ``int32`` dimension then ``d`` {what}.
    count : int or None, default=None
        Number of rows to read; ``None`` reads to the end of the file.
    offset : int, default=0
        Index of the first row to read.
    mmap : bool, default=False
        Return a read-only view of a ``numpy.memmap`` instead of reading into memory (the view
        is strided because every row carries its header).

    Returns
    -------
    X : ndarray of shape (count, d), dtype {dtype}

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is empty, truncated, or its rows declare different dimensions; the
        message names the file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ordhash.datasets import write_{kind}, read_{kind}
    >>> X = np.arange(6, dtype=np.{dtype}).reshape(3, 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "x.{kind}")
    >>> write_{kind}(path, X)
    >>> read_{kind}(path, offset=1, count=2)
    array([[2, 3],
           [4, 5]]{suffix})
"""


def read_fvecs(path, *, count=None, offset=0, mmap=False):
    return _read_vecs(path, "fvecs", count, offset, mmap)


def read_ivecs(path, *, count=None, offset=0, mmap=False):
    return _read_vecs(path, "ivecs", count, offset, mmap)


def read_bvecs(path, *, count=None, offset=0, mmap=False):
    return _read_vecs(path, "bvecs", count, offset, mmap)


read_fvecs.__doc__ = _READ_DOC.format(
    kind="fvecs", n="count", dtype="float32", what="float32 values", suffix=", dtype=float32"
).replace("array([[2, 3],\n           [4, 5]]", "array([[2., 3.],\n           [4., 5.]]")
read_ivecs.__doc__ = _READ_DOC.format(
    kind="ivecs", n="count", dtype="int32", what="int32 values", suffix=", dtype=int32"
)
read_bvecs.__doc__ = _READ_DOC.format(
    kind="bvecs", n="count", dtype="uint8", what="uint8 values", suffix=", dtype=uint8"
)


def _matrix(array, name):
    if array is None or isinstance(array, (str, bytes)):
        raise TypeError(f"{name} must be a 2-D numeric array, got {type(array).__name__}")
    arr = np.asarray(array)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_rows, dim), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has 0 rows (shape {arr.shape}); at least one is needed")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 columns (shape {arr.shape})")
    return arr


def _integer_matrix(array, name, lo, hi, kind):
    arr = _matrix(array, name)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"{name} must have an integer dtype for a {kind} file, got {arr.dtype} "
            "(cast explicitly if the values are integral)"
        )
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(
            f"{name} has values in [{arr.min()}, {arr.max()}], outside the range "
            f"[{lo}, {hi}] of the {kind} format"
        )
    return arr


def _write_rows(path, header_and_values):
    path = _as_path(path)
    header_and_values.tofile(path)


def write_fvecs(path, array):
    """Write a 2-D real array as a texmex ``.fvecs`` file (values cast to ``float32``).

    Parameters
    ----------
    path : str or os.PathLike
        Destination file (overwritten).
    array : array-like of shape (n, d)
        At least one row and one column.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ordhash.datasets import write_fvecs, read_fvecs
    >>> path = os.path.join(tempfile.mkdtemp(), "x.fvecs")
    >>> write_fvecs(path, np.eye(2))
    >>> read_fvecs(path)
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """
    arr = _matrix(array, "array")
    if arr.dtype != bool and np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        big = np.abs(np.where(finite, arr, 0)) > np.finfo(np.float32).max
        if big.any():
            raise ValueError("array has finite values too large for float32")
    n, d = arr.shape
    out = np.empty((n, d + 1), dtype="<f4")
    out[:, 1:] = arr
    out[:, 0].view("<i4")[...] = d
    _write_rows(path, out)


def write_ivecs(path, array):
    """Write a 2-D integer array as a texmex ``.ivecs`` file (``int32`` values).

    Parameters
    ----------
    path : str or os.PathLike
        Destination file (overwritten).
    array : array-like of shape (n, d)
        Integers in the ``int32`` range.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ordhash.datasets import write_ivecs, read_ivecs
    >>> path = os.path.join(tempfile.mkdtemp(), "gt.ivecs")
    >>> write_ivecs(path, [[3, 1, 2]])
    >>> read_ivecs(path)
    array([[3, 1, 2]], dtype=int32)
    """
    info = np.iinfo(np.int32)
    arr = _integer_matrix(array, "array", info.min, info.max, "ivecs")
    n, d = arr.shape
    out = np.empty((n, d + 1), dtype="<i4")
    out[:, 0] = d
    out[:, 1:] = arr
    _write_rows(path, out)


def write_bvecs(path, array):
    """Write a 2-D integer array with values in ``0..255`` as a texmex ``.bvecs`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file (overwritten).
    array : array-like of shape (n, d)
        Integers in ``0..255``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ordhash.datasets import write_bvecs, read_bvecs
    >>> path = os.path.join(tempfile.mkdtemp(), "x.bvecs")
    >>> write_bvecs(path, np.array([[0, 255]], dtype=np.uint8))
    >>> read_bvecs(path)
    array([[  0, 255]], dtype=uint8)
    """
    arr = _integer_matrix(array, "array", 0, 255, "bvecs")
    n, d = arr.shape
    out = np.empty((n, d + 4), dtype=np.uint8)
    out[:, :4] = np.frombuffer(np.array(d, dtype="<i4").tobytes(), dtype=np.uint8)
    out[:, 4:] = arr
    _write_rows(path, out)


# --------------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------------

_IDX_CODES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_BY_DTYPE = {np.dtype(v).newbyteorder("=").str: k for k, v in _IDX_CODES.items()}


def read_idx(path):
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    Compression is detected from the content (gzip magic ``1f 8b``), not the file name.

    Parameters
    ----------
    path : str or os.PathLike
        The file, e.g. ``t10k-images-idx3-ubyte.gz``.

    Returns
    -------
    array : ndarray
        Native-endian array whose shape is given by the file header, e.g. ``(10000, 28, 28)``
        ``uint8`` for MNIST images (magic 2051) and ``(10000,)`` for labels (magic 2049).

    Raises
    ------
    ValueError
        If the magic number is wrong, the type code unknown, or the payload size does not
        match the header (truncated or trailing bytes); the message names the file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ordhash.datasets import write_idx, read_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
    >>> write_idx(path, np.array([7, 2, 1], dtype=np.uint8))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    path = _as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path} is a corrupt or truncated gzip file: {err}") from err
    if len(raw) < 4:
        raise ValueError(f"{path} is not an IDX file: only {len(raw)} bytes")
    zero, code, ndim = raw[:2], raw[2], raw[3]
    magic = int.from_bytes(raw[:4], "big")
    if zero != b"\x00\x00" or code not in _IDX_CODES or ndim == 0:
        raise ValueError(
            f"{path} is not an IDX file: bad magic number {magic} (0x{magic:08x}); expected "
            "0x0000TTNN with type code TT in {08, 09, 0B, 0C, 0D, 0E} and NN >= 1 dimensions, "
            "e.g. 2051 for MNIST images and 2049 for labels"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its header needs {header} bytes")
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = _IDX_CODES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "followed by trailing bytes"
        raise ValueError(
            f"{path} is {what}: header (magic {magic}) declares shape {shape} = {expected} "
            f"bytes of data, but {got} bytes follow the header"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path, array):
    """Write an array as an IDX file; gzip-compressed when ``path`` ends with ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file (overwritten).
    array : array-like
        At least 1-D, of dtype uint8, int8, int16, int32, float32 or float64.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ordhash.datasets import write_idx, read_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "images-idx3-ubyte")
    >>> write_idx(path, np.zeros((2, 28, 28), dtype=np.uint8))
    >>> read_idx(path).shape
    (2, 28, 28)
    """
    path = _as_path(path)
    arr = np.asarray(array)
    key = arr.dtype.newbyteorder("=").str if arr.dtype.byteorder != "|" else arr.dtype.str
    if key not in _IDX_BY_DTYPE:
        raise TypeError(
            f"array has dtype {arr.dtype}, which IDX cannot store; use uint8, int8, int16, "
            "int32, float32 or float64"
        )
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got {arr.ndim}")
    code = _IDX_BY_DTYPE[key]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(arr, dtype=_IDX_CODES[code]).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
