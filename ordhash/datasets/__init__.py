"""Benchmark data for ordhash: file formats, bundled real sets and on-demand downloads.

* File formats (:mod:`ordhash.datasets.io`): texmex ``fvecs/ivecs/bvecs``, MNIST IDX,
  ann-benchmarks HDF5 and MATLAB ``.mat``.
* Bundled real sets (repository folder ``datasets/``, each with a ``CARD.md``):
  :func:`load_sift10k`, :func:`load_mnist`, plus :func:`load_digits` from scikit-learn.
  All return a frozen :class:`Dataset` with disjoint queries and exact ground truth.
* Registered public sets downloaded on demand with checksum verification: :func:`fetch`,
  :func:`list_datasets`, :func:`load_dataset` (SIFT1M, GIST1M, Fashion-MNIST, GloVe-100,
  Deep-image-96, MNIST-784 ...).
* Local-only recommendation logs that may not be redistributed:
  :func:`load_movielens100k`, :func:`load_taobao_sample`.
"""

from .containers import AnnBenchmarksData, read_ann_hdf5, read_mat, write_ann_hdf5
from .io import (
    read_bvecs,
    read_fvecs,
    read_idx,
    read_ivecs,
    write_bvecs,
    write_fvecs,
    write_idx,
    write_ivecs,
)
from .loaders import (
    Dataset,
    bundled_data_dirs,
    compute_ground_truth,
    load_digits,
    load_mnist,
    load_sift10k,
)
from .recsys import MovieLens100K, TaobaoInteractions, load_movielens100k, load_taobao_sample
from .registry import (
    ChecksumMismatchError,
    RegisteredDataset,
    RemoteFile,
    fetch,
    get_data_home,
    get_dataset_info,
    list_datasets,
)
from .remote import data_locations, load_dataset

__all__ = [
    "AnnBenchmarksData",
    "ChecksumMismatchError",
    "Dataset",
    "MovieLens100K",
    "RegisteredDataset",
    "RemoteFile",
    "TaobaoInteractions",
    "bundled_data_dirs",
    "compute_ground_truth",
    "data_locations",
    "fetch",
    "get_data_home",
    "get_dataset_info",
    "list_datasets",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "load_movielens100k",
    "load_sift10k",
    "load_taobao_sample",
    "read_ann_hdf5",
    "read_bvecs",
    "read_fvecs",
    "read_idx",
    "read_ivecs",
    "read_mat",
    "write_ann_hdf5",
    "write_bvecs",
    "write_fvecs",
    "write_idx",
    "write_ivecs",
]
