"""scikit-learn estimator checks for the ordinal learners (OEH, OCH; both variants).

No check is expected to fail. The checks fit on tiny arrays (down to one feature), so the
instances use few landmarks and few bits: OCH's intended variant needs n_bits <= n_features and
answers the one-feature check with the informative "n_features = 1" ValueError the check accepts.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from ordhash.learners.och import OCH
from ordhash.learners.oeh import OEH

ESTIMATORS = [
    OEH(n_bits=2, n_landmarks=12, random_state=0),
    OEH(n_bits=2, n_landmarks=12, variant="released", random_state=0),
    OCH(n_bits=2, n_landmarks=12, random_state=0),
    OCH(n_bits=4, n_landmarks=12, variant="released", random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
