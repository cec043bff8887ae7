"""Registry of larger public benchmark sets, downloaded on demand by :func:`fetch`.

Nothing here is bundled: :func:`fetch` downloads a registered file once into the data home
(``data_home`` argument, else ``$ORDHASH_DATA_HOME``, else ``~/ordhash_data``), verifies it
against the checksum recorded below and renames it into place atomically, so a partial or
corrupt download never carries the final name.

Only checksums actually published somewhere are recorded; each carries the source it was
taken from (``RemoteFile.checksum_source``). Where none is published the checksum is ``None``:
the file is still downloaded, its sha256 is printed, and a warning says that it could not be
verified.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "RemoteFile",
    "RegisteredDataset",
    "ChecksumMismatchError",
    "list_datasets",
    "get_dataset_info",
    "get_data_home",
    "fetch",
]

_ANN = "http://ann-benchmarks.com/"
_TEXMEX = "ftp://ftp.irisa.fr/local/texmex/corpus/"
_FASHION = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
# Source notes for the recorded checksums (repository, path, commit):
_SRC_ANN_SH = (
    "erikbern/ann-benchmarks install/data-{}.sh @ 5e3f264106e35fdeb456274a810ed47aa3a34298 "
    "(md5 of the .tar.gz, checked by ins_data_get in install/_ins_utilities.sh "
    "@ 7cbf250d30efda0891a2546f1c4271e24dd61dc8)"
)
_SRC_FASHION = (
    "zalandoresearch/fashion-mnist README.md @ 02cf0676df9403f820db28474248ba7d7d1060bb "
    "(table 'MD5 Checksum'); the same md5s are in torchvision's FashionMNIST.resources"
)
_SRC_TFDS = "tensorflow/datasets tensorflow_datasets/nearest_neighbors/{}/checksums.tsv @ {}"
_NO_CHECKSUM = "none published (searched ann-benchmarks, TFDS and other public code)"


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file of a registered dataset.

    Attributes
    ----------
    filename : str
        Name of the file in the data home.
    urls : tuple of str
        Where to download it from, tried in order.
    checksum : str or None
        ``"<algorithm>:<hex digest>"`` (``md5``, ``sha256`` or ``sha512``) of the file as
        downloaded, or ``None`` when no checksum is published.
    size : int or None
        Size in bytes when published.
    checksum_source : str
        Where the checksum (and size) were published.

    Examples
    --------
    >>> from ordhash.datasets import get_dataset_info
    >>> rfile = get_dataset_info("sift1m").files[0]
    >>> rfile.filename, rfile.checksum.split(":")[0]
    ('sift.tar.gz', 'md5')
    """

    filename: str
    urls: tuple
    checksum: str | None
    size: int | None
    checksum_source: str


@dataclass(frozen=True)
class RegisteredDataset:
    """A public dataset that :func:`fetch` knows how to download.

    Attributes
    ----------
    name : str
        Registry key.
    files : tuple of RemoteFile
    format : str
        ``"ann-hdf5"`` (ann-benchmarks HDF5), ``"texmex-tar"`` (tarball of fvecs/ivecs) or
        ``"idx-gz"`` (MNIST-style IDX files).
    metric : str
        ``"euclidean"`` or ``"angular"``.
    shape : str
        Sizes as published, e.g. ``"1,000,000 x 128 base, 10,000 queries"``.
    license : str
    homepage : str

    Examples
    --------
    >>> from ordhash.datasets import get_dataset_info
    >>> entry = get_dataset_info("glove-100-angular")
    >>> entry.format, entry.metric, len(entry.files)
    ('ann-hdf5', 'angular', 1)
    """

    name: str
    files: tuple
    format: str
    metric: str
    shape: str
    license: str
    homepage: str


def _ann(name, metric, shape, checksum=None, size=None, source=_NO_CHECKSUM, lic=""):
    url = f"{_ANN}{name}.hdf5"
    return RegisteredDataset(
        name=name,
        files=(RemoteFile(f"{name}.hdf5", (url,), checksum, size, source),),
        format="ann-hdf5",
        metric=metric,
        shape=shape,
        license=lic or "see the upstream dataset; ann-benchmarks code is MIT",
        homepage="https://github.com/erikbern/ann-benchmarks",
    )


_REGISTRY = {
    entry.name: entry
    for entry in (
        RegisteredDataset(
            name="sift1m",
            files=(RemoteFile("sift.tar.gz", (_TEXMEX + "sift.tar.gz",),
                              "md5:b23d1b3b2ee8469d819b61ca900ef0ed", None,
                              _SRC_ANN_SH.format("sift")),),
            format="texmex-tar",
            metric="euclidean",
            shape="1,000,000 x 128 base (float32 SIFT), 10,000 queries, 100-NN ground truth",
            license="TEXMEX corpus (INRIA), see its page; cite Jegou et al., TPAMI 2011",
            homepage="http://corpus-texmex.irisa.fr/",
        ),
        RegisteredDataset(
            name="gist1m",
            files=(RemoteFile("gist.tar.gz", (_TEXMEX + "gist.tar.gz",),
                              "md5:31185e0f00854f74d27e8ad8d52628a9", None,
                              _SRC_ANN_SH.format("gist")),),
            format="texmex-tar",
            metric="euclidean",
            shape="1,000,000 x 960 base (GIST), 1,000 queries, 100-NN ground truth",
            license="TEXMEX corpus (INRIA), see its page; cite Jegou et al., TPAMI 2011",
            homepage="http://corpus-texmex.irisa.fr/",
        ),
        RegisteredDataset(
            name="fashion-mnist",
            files=tuple(
                RemoteFile(fn, tuple(base + fn for base in _FASHION), "md5:" + md5, None,
                           _SRC_FASHION)
                for fn, md5 in (
                    ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                    ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                    ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                    ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
                )
            ),
            format="idx-gz",
            metric="euclidean",
            shape="60,000 x 784 train (base), 10,000 x 784 test (queries), labels 0..9",
            license="MIT (Zalando SE)",
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        ),
        _ann("sift-128-euclidean", "euclidean", "1,000,000 x 128 train, 10,000 test, 100-NN",
             "sha256:dd6f0a6ed6b7ebb8934680f861a33ed01ff33991eaee4fd60914d854a0ca5984",
             525128288, _SRC_TFDS.format("sift1m", "bc7c251b7b11e03a24d4b9d611d9fc9b28e81059"),
             "TEXMEX corpus (INRIA), see http://corpus-texmex.irisa.fr/"),
        _ann("gist-960-euclidean", "euclidean", "1,000,000 x 960 train, 1,000 test, 100-NN",
             lic="TEXMEX corpus (INRIA), see http://corpus-texmex.irisa.fr/"),
        _ann("glove-100-angular", "angular", "1,183,514 x 100 train, 10,000 test, 100-NN",
             "sha256:544af1d5e84e112cd4749571dcfd8ca109818a572f850af75a3a09e093a953c4",
             485413888,
             _SRC_TFDS.format("glove_100_angular", "0b6578e733bf36551a57cd6c9aa8ad3ece1d401d"),
             "GloVe vectors: Public Domain Dedication and License (PDDL), Stanford NLP"),
        _ann("deep-image-96-angular", "angular",
             "9,990,000 x 96 train (Deep1B subset), 10,000 test, 100-NN",
             "sha256:a0a44dfe80c58e63860862eeea2d34e62cff958dc3aec14fd65263d1d3c751f8",
             3848008288, _SRC_TFDS.format("deep1b", "14d8c884dda1b5c20fdedd12f04b429aaa092fae"),
             "Deep1B (Babenko & Lempitsky, CVPR 2016), see its page"),
        _ann("mnist-784-euclidean", "euclidean", "60,000 x 784 train, 10,000 test, 100-NN",
             lic="MNIST (LeCun, Cortes, Burges); commonly given as CC BY-SA 3.0"),
        _ann("fashion-mnist-784-euclidean", "euclidean",
             "60,000 x 784 train, 10,000 test, 100-NN", lic="MIT (Zalando SE)"),
    )
}

_USER_AGENT = "ordhash-datasets/0.1"
_TIMEOUT = 60
_CHUNK = 1 << 20


class ChecksumMismatchError(RuntimeError):
    """A downloaded or placed file does not match its registered checksum or size.

    Examples
    --------
    A file placed by hand is verified before it is used:

    >>> import pathlib, tempfile
    >>> from ordhash.datasets import ChecksumMismatchError, fetch
    >>> with tempfile.TemporaryDirectory() as home:
    ...     folder = pathlib.Path(home, "sift1m")
    ...     folder.mkdir()
    ...     _ = (folder / "sift.tar.gz").write_bytes(b"not the archive")
    ...     try:
    ...         fetch("sift1m", data_home=home, progress=False)
    ...     except ChecksumMismatchError:
    ...         print("rejected")
    rejected
    """


def list_datasets():
    """Names of the datasets :func:`fetch` can download, sorted.

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> from ordhash.datasets import list_datasets
    >>> "glove-100-angular" in list_datasets()
    True
    """
    return sorted(_REGISTRY)


def get_dataset_info(name):
    """The :class:`RegisteredDataset` entry of ``name``: URLs, checksums, sizes, license.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets`.

    Returns
    -------
    RegisteredDataset

    Raises
    ------
    ValueError
        If ``name`` is not registered.

    Examples
    --------
    >>> from ordhash.datasets import get_dataset_info
    >>> get_dataset_info("sift1m").format
    'texmex-tar'
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; registered: {', '.join(list_datasets())}")
    return _REGISTRY[name]


def get_data_home(data_home=None):
    """Directory where fetched datasets are stored (created if missing).

    Parameters
    ----------
    data_home : str or os.PathLike or None, default=None
        The directory; ``None`` uses ``$ORDHASH_DATA_HOME``, else ``~/ordhash_data``.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import os, tempfile
    >>> from ordhash.datasets import get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print(get_data_home(os.path.join(tmp, "data")).is_dir())
    True
    """
    path = _data_home_path(data_home)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _data_home_path(data_home=None):
    """The data home of :func:`get_data_home`, without creating it."""
    if data_home is None:
        data_home = os.environ.get("ORDHASH_DATA_HOME") or Path.home() / "ordhash_data"
    elif not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(f"data_home must be a str or os.PathLike, got {type(data_home).__name__}")
    return Path(data_home).expanduser()


def _hashers(checksum):
    algos = {"sha256"}
    if checksum is not None:
        algo, _, digest = checksum.partition(":")
        if algo not in {"md5", "sha256", "sha512"} or not digest:
            raise ValueError(
                f"malformed checksum {checksum!r}; expected '<md5|sha256|sha512>:<hex>'"
            )
        algos.add(algo)
    return {a: hashlib.new(a) for a in sorted(algos)}


def _hash_file(path, checksum):
    hashers = _hashers(checksum)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            for h in hashers.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _check(entry, rfile, path, digests, n_bytes, *, where):
    if rfile.size is not None and n_bytes != rfile.size:
        raise ChecksumMismatchError(
            f"{where} file {rfile.filename} of dataset {entry.name!r} has {n_bytes} bytes, but "
            f"{rfile.size} were published ({rfile.checksum_source})"
        )
    if rfile.checksum is None:
        print(f"sha256 {digests['sha256']}  {path}", file=sys.stderr)
        warnings.warn(
            f"{rfile.filename} of dataset {entry.name!r} could not be verified: no checksum is "
            f"published for it. Its sha256 is {digests['sha256']}.",
            UserWarning,
            stacklevel=4,
        )
        return
    algo, _, expected = rfile.checksum.partition(":")
    if digests[algo] != expected.lower():
        raise ChecksumMismatchError(
            f"{where} file {rfile.filename} of dataset {entry.name!r} has {algo} "
            f"{digests[algo]}, but {expected} was published ({rfile.checksum_source}). "
            "The file is corrupt, incomplete or a different version"
        )


def _marker(path):
    return path.with_name(path.name + ".verified")


def _marker_ok(path, rfile):
    try:
        info = json.loads(_marker(path).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return (info.get("checksum") == rfile.checksum and info.get("size") == st.st_size
            and info.get("mtime_ns") == st.st_mtime_ns)


def _write_marker(path, rfile, digests):
    st = path.stat()
    info = {"checksum": rfile.checksum, "sha256": digests["sha256"], "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "verified": rfile.checksum is not None}
    _marker(path).write_text(json.dumps(info))


_NETWORK_ERRORS = (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError,
                   http.client.HTTPException, socket.gaierror)


def _progress_bar(total, desc, progress):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)


def _download(url, folder, rfile, progress):
    """Stream ``url`` into a temporary file in ``folder``; return (path, digests, n_bytes)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{rfile.filename}.", suffix=".part")
    tmp = Path(tmp_name)
    hashers = _hashers(rfile.checksum)
    n_bytes = 0
    bar = None
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else rfile.size
                bar = _progress_bar(total, rfile.filename, progress)
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    for h in hashers.values():
                        h.update(block)
                    n_bytes += len(block)
                    if bar is not None:
                        bar.update(len(block))
        if length and length.isdigit() and n_bytes != int(length):
            raise ConnectionError(f"connection closed after {n_bytes} of {length} bytes")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return tmp, {a: h.hexdigest() for a, h in hashers.items()}, n_bytes


def _fetch_file(entry, rfile, folder, progress):
    dest = folder / rfile.filename
    if dest.is_file():
        if _marker_ok(dest, rfile):
            return dest
        digests = _hash_file(dest, rfile.checksum)
        _check(entry, rfile, dest, digests, dest.stat().st_size,
               where=f"the existing (delete {dest} to download it again)")
        _write_marker(dest, rfile, digests)
        return dest
    failures = []
    for url in rfile.urls:
        try:
            tmp, digests, n_bytes = _download(url, folder, rfile, progress)
        except _NETWORK_ERRORS as err:
            failures.append(f"{url} ({getattr(err, 'reason', None) or err})")
            continue
        try:
            _check(entry, rfile, tmp, digests, n_bytes, where="the downloaded")
        except ChecksumMismatchError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, dest)
        _write_marker(dest, rfile, digests)
        return dest
    expected = rfile.checksum or "no published checksum"
    raise ConnectionError(
        f"could not download {rfile.filename} of dataset {entry.name!r}: tried "
        f"{'; '.join(failures)}. If this machine is offline, download the file elsewhere from "
        f"{rfile.urls[0]} and place it at {dest} ({expected}); fetch() then verifies and uses it."
    )


def fetch(name, *, data_home=None, progress=True):
    """Download a registered dataset (once) and return where it is.

    Each file is streamed with :mod:`urllib` into a temporary file next to its destination,
    checked against the registered checksum and size, then renamed into place atomically. A
    file that is already present is verified once (a ``.verified`` marker records the result)
    and reused. A file placed by hand is verified in the same way.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets`.
    data_home : str or os.PathLike or None, default=None
        Root folder; files go to ``<data_home>/<name>/``. ``None`` uses
        ``$ORDHASH_DATA_HOME`` or ``~/ordhash_data``.
    progress : bool, default=True
        Show a progress bar when tqdm is installed.

    Returns
    -------
    path : pathlib.Path
        The file for single-file datasets (e.g. ``glove-100-angular.hdf5``), else the folder
        holding all files of the dataset.

    Raises
    ------
    ValueError
        If ``name`` is not registered.
    ConnectionError
        If no URL could be reached (offline, DNS, HTTP error); the message names the dataset,
        the URLs and where to place the file by hand.
    ChecksumMismatchError
        If the file does not match its published checksum or size; nothing is kept.

    Warns
    -----
    UserWarning
        When no checksum is published for a file: its sha256 is printed to stderr instead.

    Examples
    --------
    >>> from ordhash.datasets import fetch
    >>> path = fetch("glove-100-angular")  # doctest: +SKIP
    """
    entry = get_dataset_info(name)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {progress!r}")
    folder = get_data_home(data_home) / entry.name
    folder.mkdir(parents=True, exist_ok=True)
    paths = [_fetch_file(entry, rfile, folder, progress) for rfile in entry.files]
    return paths[0] if len(paths) == 1 else folder
