"""Every learner in ``ordhash.learners.LEARNERS`` saves and loads to identical codes."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from ordhash import persist
from ordhash.learners import LEARNERS

SMALL = {"AGH": {"n_anchors": 50}, "OEH": {"n_landmarks": 40}, "OCH": {"n_landmarks": 40}}


@pytest.fixture(scope="module")
def digits():
    return load_digits().data[:400].astype(np.float64)


@pytest.mark.parametrize("name", list(LEARNERS))
@pytest.mark.parametrize("mmap", [False, True])
def test_round_trip(name, mmap, digits, tmp_path):
    model = LEARNERS[name](n_bits=24, random_state=0, **SMALL.get(name, {})).fit(digits)
    path = tmp_path / f"{name}.ordhash"
    model.save(path)
    loaded = LEARNERS[name].load(path, mmap=mmap)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.transform(digits), model.transform(digits))
    np.testing.assert_array_equal(persist.load(path).transform(digits[:5]), model.transform(digits[:5]))


def test_other_learner_class_is_refused(digits, tmp_path):
    a, b = list(LEARNERS)[:2]
    LEARNERS[a](n_bits=8, random_state=0).fit(digits).save(tmp_path / "m")
    with pytest.raises(persist.FormatError, match=f"not a 'ordhash.{b}'"):
        LEARNERS[b].load(tmp_path / "m")
