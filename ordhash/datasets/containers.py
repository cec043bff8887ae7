"""Container formats: ann-benchmarks HDF5 and MATLAB ``.mat``.

* ann-benchmarks HDF5: datasets ``train``, ``test``, ``neighbors``, ``distances`` and the
  attributes ``distance``, ``dimension``, ``point_type``. h5py is an optional dependency
  (``pip install ordhash[hdf5]``), imported only when a file is read or written.
* MATLAB ``.mat`` files up to version 7 through :func:`scipy.io.loadmat`; v7.3 files (HDF5)
  get a clear error pointing to h5py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_option
from .io import _as_path, _matrix

__all__ = ["AnnBenchmarksData", "read_ann_hdf5", "write_ann_hdf5", "read_mat"]

# --------------------------------------------------------------------------------------------
# ann-benchmarks HDF5
# --------------------------------------------------------------------------------------------

_ANN_DISTANCES = frozenset({"euclidean", "angular", "hamming", "jaccard"})
_ANN_POINT_TYPES = frozenset({"float", "bit"})


def _import_h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - exercised only without h5py
        raise ImportError(
            "reading or writing ann-benchmarks HDF5 files needs h5py, an optional dependency "
            "of ordhash: pip install ordhash[hdf5]"
        ) from err
    return h5py


@dataclass(frozen=True, repr=False, eq=False)
class AnnBenchmarksData:
    """The content of an ann-benchmarks HDF5 file, with the dtypes stored in the file.

    Attributes
    ----------
    train, test : ndarray of shape (n_train, dim), (n_test, dim)
        Database and query points.
    neighbors : ndarray of shape (n_test, k) or None
        Ids into ``train`` of the true nearest neighbours, nearest first.
    distances : ndarray of shape (n_test, k) or None
        The matching distances.
    distance : str
        ``"euclidean"``, ``"angular"``, ``"hamming"`` or ``"jaccard"``.
    dimension : int
    point_type : str
        ``"float"`` or ``"bit"``.

    See Also
    --------
    read_ann_hdf5, write_ann_hdf5

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.datasets import AnnBenchmarksData
    >>> train = np.eye(4, dtype=np.float32)
    >>> AnnBenchmarksData(train=train, test=train[:2], neighbors=np.array([[0], [1]]),
    ...                   distances=np.zeros((2, 1), np.float32), distance="euclidean",
    ...                   dimension=4, point_type="float")
    AnnBenchmarksData(train=(4, 4), test=(2, 4), k=1, distance='euclidean', point_type='float')
    """

    train: np.ndarray
    test: np.ndarray
    neighbors: np.ndarray | None
    distances: np.ndarray | None
    distance: str
    dimension: int
    point_type: str

    def __repr__(self):
        k = None if self.neighbors is None else self.neighbors.shape[1]
        return (
            f"AnnBenchmarksData(train={self.train.shape}, test={self.test.shape}, k={k}, "
            f"distance={self.distance!r}, point_type={self.point_type!r})"
        )


def _attr_str(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.shape == ():
        return _attr_str(value[()])
    return str(value)


def read_ann_hdf5(path):
    """Read a dataset in the ann-benchmarks HDF5 layout.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.hdf5`` file with datasets ``train`` and ``test`` (and usually ``neighbors`` and
        ``distances``) and the attribute ``distance``.

    Returns
    -------
    AnnBenchmarksData

    Raises
    ------
    ImportError
        If h5py is not installed (``pip install ordhash[hdf5]``).
    ValueError
        If a required dataset or attribute is missing or the shapes disagree.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ordhash.datasets import write_ann_hdf5, read_ann_hdf5
    >>> path = os.path.join(tempfile.mkdtemp(), "toy-2-euclidean.hdf5")
    >>> train = np.array([[0., 0.], [3., 4.]], dtype=np.float32)
    >>> write_ann_hdf5(path, train, train[:1], [[0, 1]], [[0., 5.]])
    >>> data = read_ann_hdf5(path)
    >>> data.distance, data.neighbors.tolist()
    ('euclidean', [[0, 1]])
    """
    h5py = _import_h5py()
    path = _as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HDF5 file not found: {path}")
    try:
        fh = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 file: {err}") from err
    with fh:
        for key in ("train", "test"):
            if key not in fh:
                raise ValueError(
                    f"{path} has no '{key}' dataset; found {sorted(fh.keys())} "
                    "(expected the ann-benchmarks layout train/test/neighbors/distances)"
                )
        if "distance" not in fh.attrs:
            raise ValueError(f"{path} has no 'distance' attribute (ann-benchmarks layout)")
        train = np.asarray(fh["train"][...])
        test = np.asarray(fh["test"][...])
        neighbors = np.asarray(fh["neighbors"][...]) if "neighbors" in fh else None
        distances = np.asarray(fh["distances"][...]) if "distances" in fh else None
        distance = _attr_str(fh.attrs["distance"])
        point_type = _attr_str(fh.attrs.get("point_type", "float"))
        dimension = int(fh.attrs.get("dimension", train.shape[1] if train.ndim == 2 else 0))
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(
            f"{path}: train {train.shape} and test {test.shape} must be 2-D with equal widths"
        )
    for key, arr in (("neighbors", neighbors), ("distances", distances)):
        if arr is not None and (arr.ndim != 2 or arr.shape[0] != test.shape[0]):
            raise ValueError(f"{path}: {key} has shape {arr.shape}, expected ({test.shape[0]}, k)")
    return AnnBenchmarksData(train, test, neighbors, distances, distance, dimension, point_type)


def write_ann_hdf5(path, train, test, neighbors, distances, *, distance="euclidean",
                   point_type="float"):
    """Write a dataset in the ann-benchmarks HDF5 layout.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.hdf5`` file (overwritten).
    train, test : array-like of shape (n_train, dim), (n_test, dim)
        Stored as ``float32`` for ``point_type="float"`` and as ``bool`` for ``"bit"``
        (``{0, 1}`` values, one per bit, as ann-benchmarks does).
    neighbors : array-like of shape (n_test, k)
        Integer ids into ``train`` (stored as ``int32``).
    distances : array-like of shape (n_test, k)
        The matching distances (stored as ``float32``).
    distance : {"euclidean", "angular", "hamming", "jaccard"}, default="euclidean"
    point_type : {"float", "bit"}, default="float"

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ordhash.datasets import write_ann_hdf5, read_ann_hdf5
    >>> path = os.path.join(tempfile.mkdtemp(), "bits.hdf5")
    >>> bits = np.array([[0, 1, 1], [1, 1, 1]])
    >>> write_ann_hdf5(path, bits, bits[:1], [[0, 1]], [[0, 1]], distance="hamming",
    ...                point_type="bit")
    >>> read_ann_hdf5(path).train.dtype
    dtype('bool')
    """
    h5py = _import_h5py()
    path = _as_path(path)
    check_option(distance, "distance", _ANN_DISTANCES)
    check_option(point_type, "point_type", _ANN_POINT_TYPES)
    train_a = _matrix(train, "train")
    test_a = _matrix(test, "test")
    if train_a.shape[1] != test_a.shape[1]:
        raise ValueError(
            f"train has {train_a.shape[1]} columns but test has {test_a.shape[1]}"
        )
    if point_type == "bit":
        for name, arr in (("train", train_a), ("test", test_a)):
            if arr.dtype != bool and ((arr != 0) & (arr != 1)).any():
                raise ValueError(f"{name} must hold only 0/1 values for point_type='bit'")
        train_a, test_a = train_a.astype(bool), test_a.astype(bool)
    else:
        train_a, test_a = train_a.astype(np.float32), test_a.astype(np.float32)
    nb = _matrix(neighbors, "neighbors")
    if not np.issubdtype(nb.dtype, np.integer):
        raise TypeError(f"neighbors must hold integer ids, got dtype {nb.dtype}")
    if nb.min() < 0 or nb.max() >= train_a.shape[0]:
        raise ValueError(
            f"neighbors has ids in [{nb.min()}, {nb.max()}], outside [0, {train_a.shape[0] - 1}]"
            " (ids index the rows of train)"
        )
    ds = _matrix(distances, "distances")
    if nb.shape[0] != test_a.shape[0] or ds.shape != nb.shape:
        raise ValueError(
            f"neighbors {nb.shape} and distances {ds.shape} must both have shape "
            f"({test_a.shape[0]}, k)"
        )
    with h5py.File(path, "w") as fh:
        fh.attrs["type"] = "dense"
        fh.attrs["distance"] = distance
        fh.attrs["dimension"] = int(train_a.shape[1])
        fh.attrs["point_type"] = point_type
        fh.create_dataset("train", data=train_a)
        fh.create_dataset("test", data=test_a)
        fh.create_dataset("neighbors", data=nb.astype(np.int32))
        fh.create_dataset("distances", data=ds.astype(np.float32))


# --------------------------------------------------------------------------------------------
# MATLAB
# --------------------------------------------------------------------------------------------


def read_mat(path, key=None):
    """Read a MATLAB ``.mat`` file (versions 4 to 7) with :func:`scipy.io.loadmat`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    key : str or None, default=None
        A variable name: return only that variable. ``None`` returns every variable.

    Returns
    -------
    array or dict of str to array
        The variable, or a dict of all variables (without the ``__header__`` entries).

    Raises
    ------
    ValueError
        If the file is a MATLAB v7.3 file: those are HDF5 files, which scipy cannot read;
        the message tells how to open it with h5py.
    KeyError
        If ``key`` is not in the file; the message lists the variables.

    Examples
    --------
    >>> import numpy as np, tempfile, os, scipy.io
    >>> from ordhash.datasets import read_mat
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.mat")
    >>> scipy.io.savemat(path, {"X": np.eye(2)})
    >>> read_mat(path, "X")
    array([[1., 0.],
           [0., 1.]])
    """
    import scipy.io
    from scipy.io.matlab import MatReadError, matfile_version

    path = _as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MAT file not found: {path}")
    if key is not None and not isinstance(key, str):
        raise TypeError(f"key must be a str or None, got {type(key).__name__}")
    v73 = (
        f"{path} is a MATLAB v7.3 file, which is an HDF5 file that scipy.io.loadmat cannot "
        "read; open it with h5py instead (pip install ordhash[hdf5]), e.g. "
        "h5py.File(path, 'r')[name][()] (arrays come back transposed)"
    )
    try:
        major, _ = matfile_version(str(path))
    except (ValueError, MatReadError) as err:
        raise ValueError(f"{path} is not a MATLAB .mat file: {err}") from err
    if major == 2:
        raise ValueError(v73)
    try:
        contents = scipy.io.loadmat(str(path))
    except NotImplementedError as err:  # scipy's own v7.3 refusal
        raise ValueError(v73) from err
    variables = {k: v for k, v in contents.items() if not k.startswith("__")}
    if key is None:
        return variables
    if key not in variables:
        raise KeyError(f"{path} has no variable {key!r}; it holds {sorted(variables)}")
    return variables[key]
