"""linear_jax.sklearn.LinearClassifier: scikit-learn's checks, pipelines, no recompiles."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from linear_jax import sklearn as lj_sklearn
from linear_jax.objective import objective
from linear_jax.sklearn import LinearClassifier


@pytest.mark.slow
@parametrize_with_checks(
  [LinearClassifier()],
  expected_failed_checks=lambda est: lj_sklearn.EXPECTED_FAILED_CHECKS,
)
def test_sklearn_estimator_checks(estimator, check):
  check(estimator)


def blobs(n=300, seed=0):
  rng = np.random.default_rng(seed)
  labels = np.array(["ant", "bee", "cow"])
  idx = rng.integers(0, 3, n)
  x = rng.normal(size=(n, 5))
  x[np.arange(n), idx] += 3.0
  return x, labels[idx]


@pytest.mark.slow
def test_fit_predict_proba_and_objective_minimum(x64):
  x, y = blobs()
  clf = LinearClassifier(reg_strength=1e-2).fit(x, y)
  assert list(clf.classes_) == ["ant", "bee", "cow"]
  assert clf.score(x, y) >= 0.9
  p = clf.predict_proba(x)
  np.testing.assert_allclose(p.sum(1), 1, rtol=1e-12)
  np.testing.assert_array_equal(clf.classes_[p.argmax(1)], clf.predict(x))
  # The fitted weights minimize the library's objective: its gradient there
  # is at float32 rounding level (eps32 · sqrt(N) · feature scale).
  codes = np.searchsorted(clf.classes_, y)
  import jax  # pylint: disable=g-import-not-at-top

  params = {
    "W": np.asarray(clf.coef_, np.float64),
    "b": np.asarray(clf.intercept_, np.float64),
  }
  grad = jax.grad(objective)(
    params, x, codes, loss="softmax", reg_strength=1e-2
  )
  tol = 100 * np.finfo(np.float32).eps * np.sqrt(len(x))
  assert max(np.abs(grad["W"]).max(), np.abs(grad["b"]).max()) < tol


@pytest.mark.slow
def test_binary_decision_function_and_no_proba_for_svm():
  x, y = blobs()
  keep = y != "cow"
  clf = LinearClassifier(loss="svm").fit(x[keep], y[keep])
  d = clf.decision_function(x[keep])
  assert d.shape == (keep.sum(),)
  np.testing.assert_array_equal(
    np.where(d > 0, "bee", "ant"), clf.predict(x[keep])
  )
  assert not hasattr(clf, "predict_proba")


@pytest.mark.slow
def test_pipeline_and_grid_search():
  x, y = blobs()
  pipe = make_pipeline(StandardScaler(), LinearClassifier())
  search = GridSearchCV(
    pipe, {"linearclassifier__reg_strength": [1e-4, 10.0]}, cv=3
  ).fit(x, y)
  # λ = 10 shrinks W to nearly 0 (≈ chance); the search must pick 1e-4.
  assert search.best_params_["linearclassifier__reg_strength"] == 1e-4
  assert search.score(x, y) >= 0.9


def test_refits_of_same_shapes_do_not_recompile():
  x, y = blobs()
  # Same static choices as the tests above: one program shared by all.
  clf = LinearClassifier().fit(x, y)
  before = lj_sklearn.TRACE_COUNT[0]
  clf.set_params(reg_strength=0.5).fit(x + 1.0, y)
  LinearClassifier(reg_strength=3.0, seed=4).fit(x[::-1], y[::-1])
  assert lj_sklearn.TRACE_COUNT[0] == before
  LinearClassifier(epochs=101).fit(x, y)  # epochs are static: a new program
  assert lj_sklearn.TRACE_COUNT[0] == before + 1
