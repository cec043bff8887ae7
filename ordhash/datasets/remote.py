"""Turn registered (downloaded) datasets and bundled ones into :class:`Dataset` objects."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile

import numpy as np

from .containers import read_ann_hdf5
from .io import read_fvecs, read_idx, read_ivecs
from .loaders import Dataset, _gt_distances, load_digits, load_mnist, load_sift10k
from .loaders import _BUNDLES, REPO_ROOT, bundled_data_dirs
from .registry import _data_home_path, fetch, get_data_home, get_dataset_info, list_datasets

__all__ = ["load_dataset", "data_locations"]

_BUNDLED = {"sift10k": load_sift10k, "mnist": load_mnist, "digits": load_digits}
_TEXMEX_PREFIX = {"sift1m": "sift", "gist1m": "gist"}


def _local_path(entry, data_home):
    folder = get_data_home(data_home) / entry.name
    missing = [f.filename for f in entry.files if not (folder / f.filename).is_file()]
    if missing:
        raise FileNotFoundError(
            f"dataset {entry.name!r} is not in {folder} (missing {', '.join(missing)}); call "
            f"ordhash.datasets.fetch({entry.name!r}) or load_dataset(..., download=True)"
        )
    return folder / entry.files[0].filename if len(entry.files) == 1 else folder


def _extract_texmex(tarball, prefix):
    """Extract ``<prefix>/`` from a texmex tarball next to it, once; return that folder."""
    folder = tarball.parent
    target = folder / prefix
    wanted = [f"{prefix}_base.fvecs", f"{prefix}_query.fvecs", f"{prefix}_groundtruth.ivecs"]
    if all((target / w).is_file() for w in wanted):
        return target
    tmp = tempfile.mkdtemp(dir=folder, prefix=".extract-")
    try:
        with tarfile.open(tarball, "r:*") as tar:
            tar.extractall(tmp, filter="data")
        extracted = os.path.join(tmp, prefix)
        if not all(os.path.isfile(os.path.join(extracted, w)) for w in wanted):
            raise ValueError(
                f"{tarball} does not contain {', '.join(prefix + '/' + w for w in wanted)}"
            )
        if target.exists():
            shutil.rmtree(target)
        os.replace(extracted, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_dataset(name, *, data_home=None, download=True, progress=True):
    """Load a bundled or registered dataset as a :class:`Dataset`.

    Parameters
    ----------
    name : str
        ``"sift10k"``, ``"mnist"``, ``"digits"`` (bundled, no download) or one of
        :func:`list_datasets`.
    data_home : str or os.PathLike or None, default=None
        Where registered datasets are stored (see :func:`fetch`).
    download : bool, default=True
        Download a registered dataset that is not present yet; with ``False`` a missing
        dataset raises ``FileNotFoundError``.
    progress : bool, default=True
        Progress bar while downloading (when tqdm is installed).

    Returns
    -------
    Dataset
        ann-benchmarks files give base = ``train``, queries = ``test`` and their ground truth;
        texmex tarballs give base/query/ground-truth ids (distances recomputed exactly);
        Fashion-MNIST gives base = 60k train, queries = 10k test, labels, no neighbour ground
        truth (use :func:`compute_ground_truth`).

    Examples
    --------
    >>> from ordhash.datasets import load_dataset
    >>> load_dataset("digits").name
    'digits'
    >>> ds = load_dataset("glove-100-angular")  # doctest: +SKIP
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name in _BUNDLED:
        return _BUNDLED[name]()
    if name not in list_datasets():
        raise ValueError(
            f"unknown dataset {name!r}; bundled: {', '.join(sorted(_BUNDLED))}; registered: "
            f"{', '.join(list_datasets())}"
        )
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {download!r}")
    entry = get_dataset_info(name)
    if download:
        path = fetch(name, data_home=data_home, progress=progress)
    else:
        path = _local_path(entry, data_home)
    described = f"{name} ({entry.shape}; {entry.homepage}; license: {entry.license})"

    if entry.format == "ann-hdf5":
        data = read_ann_hdf5(path)
        if data.point_type != "float" or data.distance not in ("euclidean", "angular"):
            raise ValueError(
                f"{path} holds {data.point_type!r} points under {data.distance!r}; only float "
                "data with euclidean or angular distance load as a Dataset (use read_ann_hdf5)"
            )
        return Dataset(
            name=name, base=data.train, queries=data.test, ground_truth=data.neighbors,
            ground_truth_distances=data.distances, metric=data.distance,
            description=f"ann-benchmarks HDF5 {described}; ground truth from the file.",
        )
    if entry.format == "texmex-tar":
        prefix = _TEXMEX_PREFIX[name]
        folder = _extract_texmex(path, prefix)
        base = read_fvecs(folder / f"{prefix}_base.fvecs")
        queries = read_fvecs(folder / f"{prefix}_query.fvecs")
        gt = read_ivecs(folder / f"{prefix}_groundtruth.ivecs").astype(np.int64)
        return Dataset(
            name=name, base=base, queries=queries, ground_truth=gt,
            ground_truth_distances=_gt_distances(base, queries, gt), metric="euclidean",
            description=f"TEXMEX {described}; ground-truth ids from the corpus, Euclidean "
                        "distances recomputed here.",
        )
    # idx-gz (Fashion-MNIST)
    train = read_idx(path / "train-images-idx3-ubyte.gz")
    test = read_idx(path / "t10k-images-idx3-ubyte.gz")
    return Dataset(
        name=name,
        base=train.reshape(train.shape[0], -1).astype(np.float32),
        queries=test.reshape(test.shape[0], -1).astype(np.float32),
        base_labels=read_idx(path / "train-labels-idx1-ubyte.gz").astype(np.int64),
        query_labels=read_idx(path / "t10k-labels-idx1-ubyte.gz").astype(np.int64),
        metric="euclidean",
        description=f"{described}; base = train, queries = test, raw pixels 0..255.",
    )


def data_locations():
    """Where ordhash finds its data, for diagnostics (nothing is created or verified).

    Returns
    -------
    locations : dict of str to str
        The folder each bundled set would be loaded from (or ``"not found"``), the data home
        of :func:`fetch`, and the shared-data folder read by the MovieLens/Taobao loaders.

    Examples
    --------
    >>> from ordhash.datasets import data_locations
    >>> sorted(data_locations())
    ['data home', 'mnist', 'shared data', 'sift10k']
    """
    out = {}
    for name, bundle in sorted(_BUNDLES.items()):
        found = next((d for d in bundled_data_dirs(name)
                      if all((d / fn).is_file() for fn in bundle.sha256)), None)
        out[name] = str(found) if found is not None else "not found"
    out["data home"] = str(_data_home_path())
    shared = os.environ.get("ORDHASH_SHARED_DATA")
    out["shared data"] = shared or str(REPO_ROOT.parent / "shared" / "data")
    return out
