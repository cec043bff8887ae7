"""Array files for the ``ordhash`` command line: readers, atomic writers, descriptions.

A file argument is a path, optionally followed by ``:NAME`` to pick one dataset of an HDF5
file or one array of an ``.npz`` file (``sift.hdf5:train``). The format follows the suffix:

=========================  ==========================================================
``.npy``                   NumPy array (memory-mapped when read)
``.npz``                   NumPy archive (read: one array; written: every result)
``.fvecs/.ivecs/.bvecs``   texmex vectors (:mod:`ordhash.datasets.io`, memory-mapped)
``.fbin/.ibin/.u8bin/.i8bin``  big-ann-benchmarks: ``uint32`` n and d, then the values
``.hdf5/.h5``              HDF5 (h5py), e.g. the ann-benchmarks layout
=========================  ==========================================================

Writers never leave a partial file: data goes to a temporary file in the target's
directory, which is renamed over the target only when every block has been written.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .datasets.io import read_bvecs, read_fvecs, read_ivecs

__all__ = [
    "FORMATS",
    "ArrayWriter",
    "blocks",
    "check_output",
    "describe",
    "open_array",
    "progress",
    "read_ids",
    "split_spec",
]

_HDF5 = (".hdf5", ".h5", ".he5", ".hdf")
_VECS = {".fvecs": read_fvecs, ".ivecs": read_ivecs, ".bvecs": read_bvecs}
_VECS_DTYPES = {".fvecs": np.dtype("<f4"), ".ivecs": np.dtype("<i4"), ".bvecs": np.dtype("u1")}
_BIN = {".fbin": np.dtype("<f4"), ".ibin": np.dtype("<i4"), ".u8bin": np.dtype("u1"),
        ".i8bin": np.dtype("i1")}
_SELECTABLE = _HDF5 + (".npz",)
FORMATS = (".npy", ".npz", *_VECS, *_BIN, *_HDF5)


def _suffix(path):
    return Path(path).suffix.lower()


def split_spec(spec):
    """Split ``"file.hdf5:train"`` into ``(Path("file.hdf5"), "train")``.

    Only HDF5 and ``.npz`` files take a selector; an existing path containing ``:`` is taken
    as it is. Returns ``(path, None)`` without a selector.

    Examples
    --------
    >>> split_spec("ann.hdf5:test")
    (PosixPath('ann.hdf5'), 'test')
    >>> split_spec("base.fvecs")
    (PosixPath('base.fvecs'), None)
    """
    text = os.fspath(spec)
    if ":" in text and not os.path.exists(text):
        head, _, key = text.rpartition(":")
        if head and _suffix(head) in _SELECTABLE:
            if not key:
                raise ValueError(f"{text!r}: empty dataset name after ':'")
            return Path(head), key
    return Path(text), None


def _formats_hint():
    return ", ".join(FORMATS)


# ------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------

def _read_bin(path):
    size = path.stat().st_size
    dtype = _BIN[_suffix(path)]
    if size < 8:
        raise ValueError(f"{path} is not a valid {path.suffix} file: {size} bytes cannot hold "
                         "its 8-byte header (uint32 rows, uint32 dimension)")
    n, d = (int(v) for v in np.fromfile(path, dtype="<u4", count=2))
    expected = 8 + n * d * dtype.itemsize
    if size != expected or d == 0:
        raise ValueError(
            f"{path} is truncated or corrupt: its header declares {n} rows of dimension {d} "
            f"({expected} bytes with the header), but the file has {size} bytes"
        )
    if n == 0:
        return np.empty((0, d), dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=8, shape=(n, d))


def _hdf5_dataset(fh, path, key, default_key, what):
    import h5py

    names = []
    fh.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    if key is None:
        if default_key is not None and default_key in names:
            key = default_key
        elif len(names) == 1:
            key = names[0]
        else:
            listed = ", ".join(names) or "none"
            raise ValueError(f"{path} holds several datasets ({listed}); pick the {what} with "
                             f"{path}:NAME")
    if key not in fh or not isinstance(fh[key], h5py.Dataset):
        listed = ", ".join(names) or "none"
        raise ValueError(f"{path} has no dataset {key!r}; its datasets are: {listed}")
    return fh[key]


@contextmanager
def open_array(spec, what, *, default_key=None, ndim=2):
    """Open an array file for reading, yielding an array-like (sliceable, ``shape``, ``dtype``).

    Large files are memory-mapped (``.npy``, texmex, ``.*bin``) or read lazily (HDF5), so
    slicing reads only the rows asked for.

    Parameters
    ----------
    spec : str or os.PathLike
        ``path`` or ``path:NAME`` (HDF5 and ``.npz``).
    what : str
        What the file holds ("queries", "codes"...), used in error messages.
    default_key : str, optional
        HDF5/npz member used when ``spec`` names none and the file holds several.
    ndim : int or None, default=2
        Required number of dimensions (``None``: any).

    Raises
    ------
    FileNotFoundError, ValueError
        The message names the file and the problem.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(path, np.zeros((3, 2), np.float32))
    >>> with open_array(path, "input") as X:
    ...     X.shape
    (3, 2)
    """
    path, key = split_spec(spec)
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{what} path {path} is a directory, not a file")
    suffix = _suffix(path)
    handle = None
    try:
        if suffix == ".npy":
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise ValueError(f"{path} is not a readable .npy file: {exc}") from None
        elif suffix == ".npz":
            try:
                handle = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise ValueError(f"{path} is not a readable .npz file: {exc}") from None
            names = list(handle.files)
            if key is None:
                key = default_key if default_key in names else (names[0] if len(names) == 1
                                                                 else None)
            if key not in names:
                found = f"no array {key!r}" if key else "several arrays"
                raise ValueError(f"{path} has {found}; pick the {what} with {path}:NAME from: "
                                 f"{', '.join(names)}")
            try:
                arr = handle[key]
            except (ValueError, OSError) as exc:
                raise ValueError(f"{path}:{key} is not readable: {exc}") from None
        elif suffix in _VECS:
            arr = _VECS[suffix](path, mmap=True)
        elif suffix in _BIN:
            arr = _read_bin(path)
        elif suffix in _HDF5:
            from .datasets.containers import _import_h5py

            h5py = _import_h5py()
            try:
                handle = h5py.File(path, "r")
            except OSError as exc:
                raise ValueError(f"{path} is not a readable HDF5 file: {exc}") from None
            arr = _hdf5_dataset(handle, path, key, default_key, what)
        else:
            raise ValueError(f"{what} file {path} has an unknown format {path.suffix!r}; "
                             f"supported: {_formats_hint()}")
        name = f"{path}:{key}" if key else str(path)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} holds {arr.dtype} values; the {what} must be numeric")
        if ndim is not None and len(arr.shape) != ndim:
            raise ValueError(f"{name}: the {what} must be a {ndim}-D array, got shape "
                             f"{tuple(arr.shape)}")
        yield arr
    finally:
        if handle is not None:
            handle.close()


def read_ids(spec, n):
    """Read ``n`` integer ids from a 1-D array or a one-column 2-D file (e.g. ``.ivecs``)."""
    with open_array(spec, "ids", ndim=None) as arr:
        shape = tuple(arr.shape)
        if len(shape) == 2 and shape[1] == 1:
            shape = (shape[0],)
        if len(shape) != 1:
            raise ValueError(f"{spec}: ids must be 1-D (or one column), got shape {arr.shape}")
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{spec}: ids must be integers, got dtype {arr.dtype}")
        ids = np.asarray(arr[...], dtype=np.int64).reshape(shape)
    if ids.shape[0] != n:
        raise ValueError(f"{spec} holds {ids.shape[0]} ids for {n} rows")
    return ids


def blocks(n, size):
    """``(start, stop)`` of consecutive blocks of ``size`` rows covering ``range(n)``."""
    return [(a, min(n, a + size)) for a in range(0, n, size)]


def progress(total, desc, enabled, unit="rows"):
    """A tqdm bar on stderr (only on a terminal); a do-nothing object without tqdm."""
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:  # tqdm is an optional extra
            pass
        else:
            return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr,
                        disable=None, leave=False, dynamic_ncols=True)
    return _NoBar()


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------

def check_output(spec, what, formats, *, multi=False):
    """Check an output path before any work is done; return ``(path, key, suffix)``.

    The directory must exist, the path must not be a directory and the suffix must be one of
    ``formats``. ``multi`` marks outputs of several arrays (``.npz``, HDF5).
    """
    path, key = split_spec(spec)
    suffix = _suffix(path)
    if suffix not in formats:
        shown = path.suffix or "(none)"
        raise ValueError(f"{what} file {path} has an unsupported format {shown!r}; use one of: "
                         f"{', '.join(formats)}")
    if key is not None and multi:
        raise ValueError(f"{spec}: the {what} file holds several arrays with fixed names; "
                         "remove ':" + key + "'")
    if path.is_dir():
        raise ValueError(f"{what} path {path} is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"directory of the {what} file does not exist: {parent}")
    if suffix in _HDF5:
        from .datasets.containers import _import_h5py

        _import_h5py()
    return path, key, suffix


def _rows_dtype(suffix, dtype, name):
    """dtype of a file format for an array of ``dtype``; refuse lossy conversions."""
    if suffix in _VECS or suffix in _BIN:
        target = _VECS_DTYPES.get(suffix, _BIN.get(suffix))
        if target.kind == "f" and dtype.kind in "biuf":
            return target
        if target.kind in "iu" and dtype.kind in "biu":
            return target
        raise TypeError(f"{name} ({dtype}) cannot be stored in a {suffix} file of {target} "
                        "values; use .npy, .npz or HDF5")
    return dtype


def _cast(block, target, name):
    if target.kind in "iu" and block.size:
        info = np.iinfo(target)
        lo, hi = block.min(), block.max()
        if lo < info.min or hi > info.max:
            raise ValueError(f"{name} has values in [{lo}, {hi}], outside the {target} range "
                             f"of the output format; use .npy, .npz or HDF5")
    return np.ascontiguousarray(block, dtype=target)


class _Sequential:
    """Block writer for row formats with headers (texmex, .*bin): rows must come in order."""

    def __init__(self, fh, suffix, shape, dtype, name):
        self.fh, self.suffix, self.shape, self.name = fh, suffix, shape, name
        self.dtype = _rows_dtype(suffix, np.dtype(dtype), name)
        self.pos = 0
        if len(shape) != 2 or shape[1] == 0:
            raise ValueError(f"{suffix} files hold 2-D arrays with at least one column; "
                             f"{name} has shape {shape}")
        if suffix in _VECS and shape[0] == 0:
            raise ValueError(f"{suffix} files cannot hold zero rows ({name})")
        if suffix in _BIN:
            fh.write(np.asarray(shape, dtype="<u4").tobytes())

    def __setitem__(self, rows, block):
        start, stop = rows.indices(self.shape[0])[:2]
        if start != self.pos:
            raise RuntimeError(f"{self.suffix} rows must be written in order")
        values = _cast(np.asarray(block), self.dtype, self.name)
        if self.suffix in _VECS:
            d = self.shape[1]
            header = np.frombuffer(np.array(d, "<i4").tobytes(), np.uint8)
            raw = np.empty((stop - start, 4 + d * self.dtype.itemsize), np.uint8)
            raw[:, :4] = header
            raw[:, 4:] = values.view(np.uint8).reshape(stop - start, -1)
            values = raw
        self.fh.write(memoryview(values.reshape(-1).view(np.uint8)))
        self.pos = stop


class ArrayWriter:
    """Write arrays to one output file atomically, block by block.

    Use as a context manager: ``create(name, shape, dtype)`` returns a target assignable by
    row slices (``out[a:b] = block``); leaving the block without an exception renames the
    temporary file over the output, an exception removes it.

    Single-array formats (``.npy``, texmex, ``.*bin``) take one ``create``; ``.npz`` and
    HDF5 take several, stored under their names (HDF5: the ``:NAME`` of the spec overrides
    the name of a single array).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "codes.npy")
    >>> with ArrayWriter(path, "codes") as w:
    ...     out = w.create("codes", (4, 2), np.uint8)
    ...     out[0:4] = np.ones((4, 2), np.uint8)
    >>> np.load(path).sum()
    np.uint64(8)
    """

    def __init__(self, spec, what):
        self.path, self.key = split_spec(spec)
        self.what = what
        self.suffix = _suffix(self.path)
        if self.suffix not in FORMATS:
            raise ValueError(f"{what} file {self.path}: unsupported format; use one of: "
                             f"{_formats_hint()}")
        self._tmp = None
        self._fh = None
        self._members = {}
        self._memmaps = []

    def __enter__(self):
        parent = self.path.parent if str(self.path.parent) else Path(".")
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        self._tmp = tmp
        if self.suffix in _HDF5:
            from .datasets.containers import _import_h5py

            self._fh = _import_h5py().File(tmp, "w")
        elif self.suffix in _VECS or self.suffix in _BIN:
            self._fh = open(tmp, "wb")
        return self

    def create(self, name, shape, dtype):
        """A row-sliceable target for an array ``name`` of ``shape`` and ``dtype``."""
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(dtype)
        single = self.suffix not in _HDF5 and self.suffix != ".npz"
        if single and self._members:
            raise ValueError(f"a {self.suffix} file holds one array; use .npz or HDF5 for "
                             f"{', '.join([*self._members, name])}")
        if self.suffix == ".npy":
            target = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=dtype, shape=shape)
            self._memmaps.append(target)
        elif self.suffix == ".npz":
            target = np.empty(shape, dtype)
        elif self.suffix in _HDF5:
            key = self.key if self.key is not None and not self._members else name
            target = self._fh.create_dataset(key, shape=shape, dtype=dtype)
        else:
            label = self.what if name == self.what else f"{self.what} {name!r}"
            target = _Sequential(self._fh, self.suffix, shape, dtype, label)
        self._members[name] = target
        return target

    def write(self, name, array):
        """Write a whole array at once."""
        array = np.asarray(array)
        target = self.create(name, array.shape, array.dtype)
        if array.ndim:
            target[0:array.shape[0]] = array
        else:
            target[...] = array

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._finish()
        finally:
            self._close()
            self._discard()  # no-op after a successful rename
        return False

    def _finish(self):
        if self.suffix == ".npz":
            with open(self._tmp, "wb") as fh:
                np.savez(fh, **self._members)
        for mm in self._memmaps:
            mm.flush()
        self._close()
        with open(self._tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)
        os.replace(self._tmp, self.path)
        self._tmp = None

    def _close(self):
        self._memmaps = []  # dropping the last references unmaps the .npy
        self._members = {}
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _discard(self):
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None


# ------------------------------------------------------------------------------------------
# describing files (``ordhash info PATH``)
# ------------------------------------------------------------------------------------------

def describe(spec):
    """Lines describing an array file: format, shape and dtype (every dataset of HDF5/npz)."""
    path, key = split_spec(spec)
    suffix = _suffix(path)
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    if key is None and suffix in _HDF5:
        from .datasets.containers import _import_h5py

        h5py = _import_h5py()
        try:
            fh = h5py.File(path, "r")
        except OSError as exc:
            raise ValueError(f"{path} is not a readable HDF5 file: {exc}") from None
        lines = [f"{'file':>14}: {path} (HDF5)"]
        with fh:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    lines.append(f"{name:>14}: {obj.dtype} {tuple(obj.shape)}")
            fh.visititems(visit)
            for attr, value in fh.attrs.items():
                value = value.decode() if isinstance(value, bytes) else value
                lines.append(f"{'@' + attr:>14}: {value}")
        return lines
    if key is None and suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as fh:
                lines = [f"{'file':>14}: {path} (npz)"]
                for name in fh.files:
                    arr = fh[name]
                    lines.append(f"{name:>14}: {arr.dtype} {arr.shape}")
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path} is not a readable .npz file: {exc}") from None
        return lines
    with open_array(spec, "array", ndim=None) as arr:
        return [f"{'file':>14}: {spec} ({suffix.lstrip('.')})",
                f"{'shape':>14}: {tuple(arr.shape)}", f"{'dtype':>14}: {arr.dtype}"]
