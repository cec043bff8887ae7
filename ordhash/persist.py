"""Saving and loading ordhash objects: a versioned, documented, pickle-free file format.

File layout (format version 1), all integers little-endian::

    offset  size  content
    0       8     magic  b"ORDHASH\\x00"
    8       4     format version (uint32) = 1
    12      4     reserved, 0
    16      8     header length H in bytes (uint64)
    24      H     header: UTF-8 JSON (see below)
    ...           zero padding to a multiple of 64
    D             array blobs, C order, little-endian; D is the first multiple of 64 after
                  the header, and every blob starts at a multiple of 64

The JSON header holds ``{"kind", "kind_version", "meta", "arrays", "header_crc32"}``:
``kind`` names the class (``"ordhash.ITQ"``, ``"ordhash.HammingIndex"``, ...), ``meta`` its
JSON-able state (parameters, scalars) and ``arrays`` one entry per array with ``dtype``,
``shape``, ``offset`` (relative to D), ``nbytes`` and ``crc32``. ``header_crc32`` is the CRC-32 of the header
serialised with ``header_crc32`` set to 0, so a damaged header is detected too.

Guarantees:

- **No pickle.** Arrays are raw bytes with a dtype from a fixed allow-list; objects are rebuilt
  only through the registry of ordhash classes (:func:`register`), never by importing a name
  taken from the file.
- **Atomic save.** The file is written to a temporary file in the same directory, flushed,
  fsync'ed and renamed over the target: a crash leaves either the old file or the new one.
- **Checked load.** A wrong magic, an unknown format version, a truncated file, a corrupt
  header or array (CRC mismatch) and a file of another class all raise :class:`FormatError`
  (a ``ValueError``) that says which.
- **Memory mapping.** ``mmap=True`` maps large arrays read-only instead of reading them
  (checksums of mapped arrays are verified only with ``verify=True``).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

MAGIC = b"ORDHASH\x00"
FORMAT_VERSION = 1
ALIGN = 64
_PREFIX = struct.Struct("<8sIIQ")
_ALLOWED_DTYPES = {
    "bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
    "float32", "float64",
}
_REGISTRY: dict[str, type] = {}

__all__ = ["FormatError", "save", "load", "register", "registered_class", "write_state", "read_state"]


class FormatError(ValueError):
    """A file is not a valid ordhash file, or not of the expected kind.

    A subclass of ``ValueError``; the message names the file and the problem (bad magic,
    unsupported format version, truncation, checksum mismatch, another class).

    Examples
    --------
    >>> import os, tempfile
    >>> import ordhash
    >>> from ordhash.persist import FormatError
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "model.ordhash")
    ...     with open(path, "wb") as fh:
    ...         _ = fh.write(b"this is not an ordhash file")
    ...     try:
    ...         ordhash.load(path)
    ...     except FormatError as exc:
    ...         print("not an ordhash file" in str(exc))
    True
    """


def register(kind, version=1):
    """Class decorator: make a class saveable under the name ``kind``.

    The class provides ``_get_state(self) -> (meta: dict, arrays: dict)`` and
    ``_from_state(cls, meta, arrays) -> instance`` (a classmethod). Learners derived from
    :class:`~ordhash.learners.BaseHasher` are registered automatically.

    Parameters
    ----------
    kind : str
        Name stored in the file header; must be unique (``"mypackage.MyClass"``).
    version : int, default=1
        Version of the class's state layout; :func:`load` refuses files written by a newer
        version.

    Returns
    -------
    callable
        The decorator; it returns the class unchanged.

    Raises
    ------
    ValueError
        When another class is already registered under ``kind``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from ordhash import persist
    >>> @persist.register("example.Points")
    ... class Points:
    ...     def __init__(self, xy):
    ...         self.xy = xy
    ...     def _get_state(self):
    ...         return {"n": len(self.xy)}, {"xy": self.xy}
    ...     @classmethod
    ...     def _from_state(cls, meta, arrays):
    ...         return cls(arrays["xy"])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = persist.save(Points(np.eye(2)), os.path.join(tmp, "points.ordhash"))
    ...     print(persist.load(path).xy)
    [[1. 0.]
     [0. 1.]]
    """

    def deco(cls):
        if kind in _REGISTRY and _REGISTRY[kind] is not cls:
            raise ValueError(f"persistence kind {kind!r} is already registered")
        cls._persist_kind = kind
        cls._persist_version = version
        _REGISTRY[kind] = cls
        return cls

    return deco


def registered_class(kind):
    """The class registered under ``kind``, or None (used to rebuild nested objects).

    An ordhash kind whose module is not imported yet is imported from a fixed table first
    (``import ordhash`` is lazy); any other unknown name gives None, never an import.

    Parameters
    ----------
    kind : str
        A name given to :func:`register`.

    Returns
    -------
    type or None

    Examples
    --------
    >>> from ordhash.learners import ITQ
    >>> from ordhash.persist import registered_class
    >>> registered_class("ordhash.ITQ") is ITQ, registered_class("no.such.kind")
    (True, None)
    """
    return _REGISTRY.get(kind) or _import_builtin(kind)


def _crc(data) -> int:
    return zlib.crc32(memoryview(data).cast("B")) & 0xFFFFFFFF


def _pad(n):
    return (-n) % ALIGN


def write_state(path, kind, meta, arrays, *, kind_version=1):
    """Write ``meta`` (JSON-able dict) and ``arrays`` (name -> ndarray) atomically to ``path``.

    The low-level half of :func:`save`, in the file layout of the module docstring.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (replaced atomically).
    kind : str
        Name of what the file holds.
    meta : dict
        JSON-serialisable state.
    arrays : dict of str -> ndarray
        Arrays of a fixed set of numeric dtypes (``bool``, (u)int8-64, float32/64).
    kind_version : int, default=1
        Version of ``kind``'s state layout.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        If ``meta`` is not JSON-serialisable or an array has a dtype that cannot be saved.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from ordhash.persist import read_state, write_state
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_state(os.path.join(tmp, "state.ordhash"), "example.State",
    ...                        {"alpha": 0.5}, {"w": np.arange(3, dtype=np.int32)})
    ...     kind, version, meta, arrays = read_state(path, expected_kind="example.State")
    >>> kind, version, meta, arrays["w"]
    ('example.State', 1, {'alpha': 0.5}, array([0, 1, 2], dtype=int32))
    """
    path = Path(path)
    entries = {}
    blobs = []
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.dtype.name not in _ALLOWED_DTYPES:
            raise TypeError(f"array {name!r} has dtype {arr.dtype}, which cannot be saved")
        arr = arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=False)
        entries[name] = {"dtype": arr.dtype.name, "shape": list(arr.shape),
                         "nbytes": int(arr.nbytes), "crc32": _crc(arr.reshape(-1).view(np.uint8))}
        blobs.append((name, arr))
    try:
        json.dumps(meta)
    except TypeError as exc:
        raise TypeError(f"meta of {kind!r} is not JSON-serialisable: {exc}") from None

    # Array offsets are relative to the start of the data section, which begins at the first
    # multiple of ALIGN after the header, so the header does not depend on its own length.
    offset = 0
    for name, arr in blobs:
        entries[name]["offset"] = offset
        offset += arr.nbytes + _pad(arr.nbytes)
    header = {"kind": kind, "kind_version": kind_version, "meta": meta,
              "arrays": entries, "header_crc32": 0}
    header["header_crc32"] = _crc(json.dumps(header, sort_keys=True).encode())
    raw = json.dumps(header, sort_keys=True).encode()
    data_start = _PREFIX.size + len(raw) + _pad(_PREFIX.size + len(raw))

    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(raw)))
            fh.write(raw)
            pos = _PREFIX.size + len(raw)
            for name, arr in blobs:
                target = data_start + entries[name]["offset"]
                fh.write(b"\x00" * (target - pos))
                fh.write(memoryview(arr.reshape(-1).view(np.uint8)))
                pos = target + arr.nbytes
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 & ~umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def read_state(path, *, expected_kind=None, mmap=False, verify=True):
    """Read a file written by :func:`write_state`.

    Parameters
    ----------
    path : str or os.PathLike
    expected_kind : str, optional
        If given, the file must hold this kind.
    mmap : bool, default=False
        Memory-map arrays of 64 KiB or more read-only instead of reading them.
    verify : bool, default=True
        Also verify the checksums of memory-mapped arrays (reading them once).

    Returns
    -------
    kind : str
    kind_version : int
    meta : dict
    arrays : dict of name -> ndarray (read-only memory maps when ``mmap=True``)

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    FormatError
        If the file is not a valid ordhash file, is damaged or holds another kind.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from ordhash.persist import read_state, write_state
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_state(os.path.join(tmp, "s.ordhash"), "example.State", {},
    ...                        {"x": np.ones(2)})
    ...     read_state(path)[3]["x"]
    array([1., 1.])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        prefix = fh.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size:
            raise FormatError(f"{path}: truncated file ({size} bytes), not an ordhash file")
        magic, version, _, header_len = _PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise FormatError(f"{path}: not an ordhash file (bad magic {magic!r})")
        if version != FORMAT_VERSION:
            raise FormatError(
                f"{path}: file format version {version} is not supported by this ordhash "
                f"(which reads version {FORMAT_VERSION})"
            )
        if _PREFIX.size + header_len > size:
            raise FormatError(f"{path}: truncated file (header runs past the end)")
        raw = fh.read(header_len)
        try:
            header = json.loads(raw.decode())
            stored_crc = header["header_crc32"]
            header["header_crc32"] = 0
            ok = _crc(json.dumps(header, sort_keys=True).encode()) == stored_crc
            kind, kind_version = header["kind"], header["kind_version"]
            meta, entries = header["meta"], header["arrays"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise FormatError(f"{path}: corrupt header ({exc.__class__.__name__})") from None
        if not ok:
            raise FormatError(f"{path}: corrupt header (checksum mismatch)")
        data_start = _PREFIX.size + header_len + _pad(_PREFIX.size + header_len)
        if expected_kind is not None and kind != expected_kind:
            raise FormatError(f"{path}: holds a {kind!r}, not a {expected_kind!r}")
        arrays = {}
        for name, e in entries.items():
            if e["dtype"] not in _ALLOWED_DTYPES:
                raise FormatError(f"{path}: array {name!r} has a disallowed dtype {e['dtype']!r}")
            dtype = np.dtype(e["dtype"]).newbyteorder("<")
            shape = tuple(int(s) for s in e["shape"])
            nbytes, offset = int(e["nbytes"]), data_start + int(e["offset"])
            if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != nbytes:
                raise FormatError(f"{path}: array {name!r} has inconsistent shape and size")
            if offset + nbytes > size:
                raise FormatError(f"{path}: truncated file (array {name!r} runs past the end)")
            if mmap and nbytes >= 1 << 16:
                arr = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
                check = verify
            else:
                fh.seek(offset)
                buf = fh.read(nbytes)
                if len(buf) != nbytes:
                    raise FormatError(f"{path}: truncated file (array {name!r})")
                arr = np.frombuffer(buf, dtype=dtype).reshape(shape).copy()
                check = True
            if check and _crc(np.asarray(arr).reshape(-1).view(np.uint8)) != e["crc32"]:
                raise FormatError(f"{path}: array {name!r} is corrupt (checksum mismatch)")
            arrays[name] = arr.astype(dtype.newbyteorder("="), copy=False)
    return kind, kind_version, meta, arrays


def save(obj, path):
    """Save a registered ordhash object (learner, index, searcher) to ``path`` atomically.

    Objects with a ``save`` method (learners, indexes, graphs) call this function.

    Parameters
    ----------
    obj : object
        An instance of a class registered with :func:`register`.
    path : str or os.PathLike
        Destination file (replaced atomically).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        If ``obj``'s class is not registered.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import ordhash
    >>> from ordhash.learners import LSH
    >>> X = np.random.default_rng(0).standard_normal((100, 8))
    >>> lsh = LSH(n_bits=16, random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = ordhash.save(lsh, os.path.join(tmp, "lsh.ordhash"))
    ...     again = ordhash.load(path)
    >>> bool((again.transform(X) == lsh.transform(X)).all())
    True
    """
    kind = getattr(type(obj), "_persist_kind", None)
    if kind is None or _REGISTRY.get(kind) is not type(obj):
        raise TypeError(f"{type(obj).__name__} objects cannot be saved by ordhash")
    meta, arrays = obj._get_state()
    return write_state(path, kind, meta, arrays, kind_version=type(obj)._persist_version)


#: Modules that define (and so register) ordhash's own saveable classes. ``import ordhash`` is
#: lazy, so :func:`load` imports the one a file needs; every other ``ordhash.*`` kind is a
#: learner, registered by importing :mod:`ordhash.learners`.
_BUILTIN_MODULES = {
    "ordhash.HammingIndex": "ordhash.index.flat",
    "ordhash.MultiIndexHashing": "ordhash.index.mih",
    "ordhash.HashingSearcher": "ordhash.index.searcher",
    "ordhash.ProximityGraph": "ordhash.walk.graph",
    "ordhash.GraphWalkIndex": "ordhash.walk.search",
    "ordhash.NeuralMatcher": "ordhash.walk.neural",
}


def _import_builtin(kind):
    """The class of an ordhash kind that is not registered yet (its module not imported)."""
    if not kind.startswith("ordhash."):
        return None
    from importlib import import_module

    import_module(_BUILTIN_MODULES.get(kind, "ordhash.learners"))
    return _REGISTRY.get(kind)


def load(path, *, expected=None, mmap=False, verify=True):
    """Load an object saved by :func:`save`.

    Parameters
    ----------
    path : str or Path
    expected : class, optional
        If given, the file must hold an object of exactly this class.
    mmap : bool, default=False
        Memory-map large arrays read-only instead of reading them into memory.
    verify : bool, default=True
        Verify checksums of memory-mapped arrays too (reading them once).

    Returns
    -------
    object
        A new instance of the class the file holds.

    Raises
    ------
    FormatError
        If the file is not a valid ordhash file, is damaged, holds an unknown kind, a newer
        version of it, or not an ``expected`` object.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import ordhash
    >>> from ordhash.index import HammingIndex
    >>> index = HammingIndex(16)
    >>> index.add(np.arange(20, dtype=np.uint8).reshape(10, 2))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = ordhash.save(index, os.path.join(tmp, "index.ordhash"))
    ...     again = ordhash.load(path, expected=HammingIndex)
    >>> again.ntotal
    10
    """
    expected_kind = None
    if expected is not None:
        expected_kind = getattr(expected, "_persist_kind", None)
        if expected_kind is None:
            raise TypeError(f"{expected.__name__} is not a saveable ordhash class")
    kind, kind_version, meta, arrays = read_state(
        path, expected_kind=expected_kind, mmap=mmap, verify=verify
    )
    cls = registered_class(kind)
    if cls is None:
        raise FormatError(f"{path}: unknown object kind {kind!r}")
    if kind_version > cls._persist_version:
        raise FormatError(
            f"{path}: {kind} version {kind_version} is newer than this ordhash supports "
            f"({cls._persist_version})"
        )
    return cls._from_state(meta, arrays)
