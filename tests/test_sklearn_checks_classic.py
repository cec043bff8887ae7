"""scikit-learn estimator conformance of the classic hashing learners.

Every check applies and passes: no expected failures are declared.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from ordhash.learners.classic import AGH, ITQ, LSH, PCAH, SH, SpH

# The checks' datasets are tiny (10-30 rows, 1-5 features), so the instances are small:
# PCAH and ITQ need n_bits <= min(n_samples, n_features) (with n_bits=2 the one-feature check
# exercises their informative error), AGH needs n_bits < n_anchors <= n_samples.
ESTIMATORS = [
    LSH(n_bits=8, random_state=0),
    LSH(n_bits=5, center=False, random_state=0),
    PCAH(n_bits=2),
    ITQ(n_bits=2, n_iter=5, random_state=0),
    SH(n_bits=6),
    AGH(n_bits=2, n_anchors=5, s=2, random_state=0),
    AGH(n_bits=3, n_anchors=6, s=3, kmeans="minibatch", random_state=0),
    SpH(n_bits=6, n_iter=20, random_state=0),
]


def _expected_failed_checks(estimator):
    return {}


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas():
    # Tiny BLAS calls: OpenBLAS worker threads only add contention on a shared 2-core box.
    with threadpool_limits(1):
        yield


# On 10-30 rows the pairwise sphere overlaps are integers near n/4 ~ 5, so SpH's 10% / 15%
# tolerances (below one point) cannot be met and it rightly warns; k-means may warn about
# duplicate points in the integer-valued check data.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
