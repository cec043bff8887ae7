"""Readers for recommendation interaction logs that ordhash may NOT redistribute.

MovieLens-100K ("The user may not redistribute the data without separate permission",
GroupLens) and the Taobao UserBehavior sample (Tianchi research-only terms) are never bundled or
downloaded by ordhash. These loaders read a copy the user already has: a ``path`` argument,
else ``$ORDHASH_SHARED_DATA/<folder>``, else ``<repo>/../shared/data/<folder>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._validation import check_int, check_option
from .loaders import REPO_ROOT

__all__ = [
    "MovieLens100K",
    "TaobaoInteractions",
    "load_movielens100k",
    "load_taobao_sample",
]

_ML_FOLDER = "movielens-100k"
_TAOBAO_FOLDER = "taobao-userbehavior-head"
_TAOBAO_FILES = ("UserBehavior_head.csv", "UserBehavior.csv")
_ML_RATING_FILES = frozenset(
    ["u.data"]
    + [f"u{i}.{part}" for i in range(1, 6) for part in ("base", "test")]
    + [f"u{c}.{part}" for c in "ab" for part in ("base", "test")]
)
_ML_LICENSE = (
    "MovieLens-100K is not bundled with ordhash and is never downloaded by it: its GroupLens "
    "license says 'The user may not redistribute the data without separate permission'. "
    "Download ml-100k yourself from https://grouplens.org/datasets/movielens/100k/ (research "
    "use, acknowledge GroupLens) and pass path=<the ml-100k folder>."
)
_TAOBAO_LICENSE = (
    "The Taobao UserBehavior data is not bundled with ordhash and is never downloaded by it: it "
    "is released by Alibaba Tianchi (dataset 649) for research use under Tianchi's terms, with "
    "no open licence. Obtain UserBehavior.csv from https://tianchi.aliyun.com/dataset/649 and "
    "pass path=<the CSV file or its folder>."
)


def _candidates(path, folder):
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str, os.PathLike or None, got {type(path).__name__}")
        return [Path(path).expanduser()]
    found = []
    env = os.environ.get("ORDHASH_SHARED_DATA")
    if env:
        found.append(Path(env).expanduser() / folder)
    found.append(REPO_ROOT.parent / "shared" / "data" / folder)
    return found


def _not_found(what, searched, license_text):
    looked = "\n  ".join(str(p) for p in searched)
    return FileNotFoundError(f"{what} was not found. Looked in:\n  {looked}\n{license_text}")


@dataclass(frozen=True, repr=False, eq=False)
class MovieLens100K:
    """MovieLens-100K ratings plus item metadata.

    Attributes
    ----------
    users, items : ndarray of shape (n_ratings,), int64
        The original 1-based ids (users 1..943, items 1..1682).
    ratings : ndarray of shape (n_ratings,), int8
        Stars 1..5.
    timestamps : ndarray of shape (n_ratings,), int64
        Unix seconds.
    item_genres : ndarray of shape (1682, 19), bool
        Row ``i`` holds the genre flags of item id ``i + 1``.
    genre_names : tuple of str
        The 19 genres, in column order (``"unknown"``, ``"Action"``, ...).
    item_titles : tuple of str
        Title of item id ``i + 1`` at position ``i``.
    source : str
        The ratings file that was read (``u.data``, ``u1.base``, ...).

    See Also
    --------
    load_movielens100k : reads a local copy of ml-100k into this container.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.datasets import MovieLens100K
    >>> ml = MovieLens100K(users=np.array([1, 2, 2]), items=np.array([1, 1, 2]),
    ...                    ratings=np.array([5, 3, 4], np.int8), timestamps=np.zeros(3, np.int64),
    ...                    item_genres=np.zeros((2, 19), bool), genre_names=("unknown",) * 19,
    ...                    item_titles=("A (1995)", "B (1996)"), source="u.data")
    >>> ml
    MovieLens100K(source='u.data', ratings=3, users=2, items=2)
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    item_genres: np.ndarray
    genre_names: tuple
    item_titles: tuple
    source: str

    @property
    def n_users(self):
        """Largest user id (ids are 1-based and contiguous in ml-100k)."""
        return int(self.users.max())

    @property
    def n_items(self):
        """Number of items in the catalogue (``u.item``)."""
        return self.item_genres.shape[0]

    def __repr__(self):
        return (
            f"MovieLens100K(source={self.source!r}, ratings={self.ratings.shape[0]}, "
            f"users={self.n_users}, items={self.n_items})"
        )


def load_movielens100k(path=None, *, ratings_file="u.data"):
    """Read a local copy of MovieLens-100K (ml-100k); never bundled nor downloaded.

    Parameters
    ----------
    path : str or os.PathLike or None, default=None
        The ``ml-100k`` folder (holding ``u.data``, ``u.item``, ``u.genre``). ``None`` looks in
        ``$ORDHASH_SHARED_DATA/movielens-100k`` then ``<repo>/../shared/data/movielens-100k``.
    ratings_file : str, default="u.data"
        Which ratings to read: ``"u.data"`` (all 100,000), an official 80/20 fold
        ``"u1.base"`` .. ``"u5.test"``, or ``"ua.base"``, ``"ua.test"``, ``"ub.base"``,
        ``"ub.test"`` (10 test ratings per user).

    Returns
    -------
    MovieLens100K

    Raises
    ------
    FileNotFoundError
        If no copy is found; the message lists where it looked and explains the license.

    Examples
    --------
    >>> from ordhash.datasets import load_movielens100k
    >>> ml = load_movielens100k()  # doctest: +SKIP
    >>> ml.ratings.shape, ml.item_genres.shape  # doctest: +SKIP
    ((100000,), (1682, 19))
    """
    check_option(ratings_file, "ratings_file", _ML_RATING_FILES)
    searched = _candidates(path, _ML_FOLDER)
    need = (ratings_file, "u.item", "u.genre")
    folder = next((p for p in searched if all((p / f).is_file() for f in need)), None)
    if folder is None:
        raise _not_found(f"MovieLens-100K ({', '.join(need)})", searched, _ML_LICENSE)
    table = np.loadtxt(folder / ratings_file, dtype=np.int64, delimiter="\t", ndmin=2)
    if table.shape[1] != 4:
        raise ValueError(
            f"{folder / ratings_file} has {table.shape[1]} columns; expected 4 "
            "(user, item, rating, timestamp)"
        )
    genres = []
    for line in (folder / "u.genre").read_text(encoding="latin-1").splitlines():
        if line.strip():
            genre, _, index = line.rpartition("|")
            genres.append((int(index), genre))
    genre_names = tuple(g for _, g in sorted(genres))
    titles, flags = [], []
    for n, line in enumerate((folder / "u.item").read_text(encoding="latin-1").splitlines()):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5 + len(genre_names) or int(fields[0]) != n + 1:
            raise ValueError(
                f"{folder / 'u.item'} line {n + 1} is malformed: expected item id {n + 1} and "
                f"{5 + len(genre_names)} '|'-separated fields"
            )
        titles.append(fields[1])
        flags.append([f == "1" for f in fields[5:]])
    item_genres = np.array(flags, dtype=bool).reshape(len(titles), len(genre_names))
    users, items, ratings, ts = table.T
    if items.max() > len(titles) or items.min() < 1 or users.min() < 1:
        raise ValueError(f"{folder / ratings_file} has ids outside the catalogue of u.item")
    return MovieLens100K(
        users=np.ascontiguousarray(users),
        items=np.ascontiguousarray(items),
        ratings=ratings.astype(np.int8),
        timestamps=np.ascontiguousarray(ts),
        item_genres=item_genres,
        genre_names=genre_names,
        item_titles=tuple(titles),
        source=ratings_file,
    )


@dataclass(frozen=True, repr=False, eq=False)
class TaobaoInteractions:
    """Taobao UserBehavior interactions, one row per event.

    Attributes
    ----------
    user, item, category : ndarray of shape (n,), int64
        Original ids.
    behavior : ndarray of shape (n,), str (``<U4``)
        ``"pv"`` (page view), ``"cart"``, ``"fav"`` or ``"buy"``.
    timestamp : ndarray of shape (n,), int64
        Unix seconds.

    See Also
    --------
    load_taobao_sample : reads a local UserBehavior CSV into this container.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.datasets import TaobaoInteractions
    >>> tb = TaobaoInteractions(user=np.array([1, 1, 2]), item=np.array([10, 11, 10]),
    ...                         category=np.array([7, 7, 7]), behavior=np.array(["pv", "buy", "pv"]),
    ...                         timestamp=np.array([0, 60, 120]))
    >>> len(tb), tb
    (3, TaobaoInteractions(rows=3, users=2, items=2))
    """

    user: np.ndarray
    item: np.ndarray
    category: np.ndarray
    behavior: np.ndarray
    timestamp: np.ndarray

    def __len__(self):
        return self.user.shape[0]

    def __repr__(self):
        return (
            f"TaobaoInteractions(rows={len(self)}, users={np.unique(self.user).size}, "
            f"items={np.unique(self.item).size})"
        )


_BEHAVIORS = frozenset({"pv", "cart", "fav", "buy"})


def load_taobao_sample(path=None, *, max_rows=None):
    """Read a local Taobao UserBehavior CSV (e.g. the 4,321-row head sample); never bundled.

    Parameters
    ----------
    path : str or os.PathLike or None, default=None
        The CSV file, or a folder holding ``UserBehavior_head.csv`` or ``UserBehavior.csv``.
        ``None`` looks in ``$ORDHASH_SHARED_DATA/taobao-userbehavior-head`` then
        ``<repo>/../shared/data/taobao-userbehavior-head``.
    max_rows : int or None, default=None
        Read at most this many rows (the full file has about 100 million).

    Returns
    -------
    TaobaoInteractions

    Raises
    ------
    FileNotFoundError
        If no file is found; the message lists where it looked and explains the terms.
    ValueError
        If a row does not have 5 fields or an unknown behaviour type.

    Examples
    --------
    >>> from ordhash.datasets import load_taobao_sample
    >>> tb = load_taobao_sample()  # doctest: +SKIP
    >>> sorted(set(tb.behavior))  # doctest: +SKIP
    ['buy', 'cart', 'fav', 'pv']
    """
    if max_rows is not None:
        max_rows = check_int(max_rows, "max_rows", min_value=1)
    searched = _candidates(path, _TAOBAO_FOLDER)
    csv = None
    for cand in searched:
        if cand.is_file():
            csv = cand
        elif cand.is_dir():
            csv = next((cand / f for f in _TAOBAO_FILES if (cand / f).is_file()), None)
        if csv is not None:
            break
    if csv is None:
        raise _not_found(
            f"Taobao UserBehavior ({' or '.join(_TAOBAO_FILES)})", searched, _TAOBAO_LICENSE
        )
    dtype = [("user", "i8"), ("item", "i8"), ("category", "i8"), ("behavior", "U4"),
             ("timestamp", "i8")]
    try:
        rows = np.loadtxt(csv, delimiter=",", dtype=dtype, max_rows=max_rows, ndmin=1)
    except ValueError as err:
        raise ValueError(
            f"{csv} is not a UserBehavior CSV (user,item,category,behavior,timestamp): {err}"
        ) from err
    unknown = set(np.unique(rows["behavior"]).tolist()) - _BEHAVIORS
    if unknown:
        raise ValueError(f"{csv} has unknown behaviour types {sorted(unknown)}")
    return TaobaoInteractions(
        user=np.ascontiguousarray(rows["user"]),
        item=np.ascontiguousarray(rows["item"]),
        category=np.ascontiguousarray(rows["category"]),
        behavior=np.ascontiguousarray(rows["behavior"]),
        timestamp=np.ascontiguousarray(rows["timestamp"]),
    )
