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
    "W": np.asarray(clf.coef_.T, np.float64),  # coef_ is [C, D]
    "b": np.asarray(clf.intercept_, np.float64),
  }
  grad = jax.grad(objective)(
    params, x, codes, loss="softmax", reg_strength=1e-2
  )
  tol = 100 * np.finfo(np.float32).eps * np.sqrt(len(x))
  assert max(np.abs(grad["W"]).max(), np.abs(grad["b"]).max()) < tol


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


# --- scikit-learn's conventions: coef_ layout, class_weight -----------------


def three_class_problem(n=300, d=6, counts=None, seed=0):
  """Overlapping Gaussian classes (not separable, so the optimum is finite).

  ``counts`` fixes the rows per class (an imbalanced problem); labels are
  the non-contiguous ints 10, 20, 30, ... so the label ↔ column map is used.
  """
  rng = np.random.default_rng(seed)
  if counts is None:
    idx = rng.integers(0, 3, n)
  else:
    idx = rng.permutation(np.repeat(np.arange(len(counts)), counts))
  centers = rng.normal(size=(idx.max() + 1, d))
  x = rng.normal(size=(len(idx), d)) + centers[idx] + 0.5
  return x, 10 * (idx + 1)


def test_coef_layout_and_every_method_reads_it():
  x, y = blobs()
  for keep in (y != "cow", np.ones(len(y), bool)):
    xk, yk = x[keep], y[keep]
    clf = LinearClassifier().fit(xk, yk)
    c, d = len(clf.classes_), x.shape[1]
    rows = 1 if c == 2 else c
    assert clf.coef_.shape == (rows, d)
    assert clf.intercept_.shape == (rows,)
    # decision_function is x·coef_ᵀ + intercept_, as in LinearClassifierMixin
    # (1-D for two classes), and predict and predict_proba follow from it:
    # editing coef_ changes them all.
    clf.coef_ = clf.coef_[:, ::-1].copy()
    clf.intercept_ = clf.intercept_ + np.arange(rows)
    want = xk @ clf.coef_.T + clf.intercept_
    got = clf.decision_function(xk)
    if c == 2:
      want = want[:, 0]
      assert got.shape == (len(xk),)
      # log σ(d) = −log(1 + e^{−d}), log(1 − σ(d)) = −log(1 + e^{d})
      want_log = -np.stack([np.logaddexp(0, want), np.logaddexp(0, -want)], 1)
      want_label = clf.classes_[(want > 0).astype(int)]
    else:
      want_log = want - np.log(np.exp(want).sum(1, keepdims=True))
      want_label = clf.classes_[want.argmax(1)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(xk), want_label)
    np.testing.assert_allclose(
      clf.predict_proba(xk), np.exp(want_log), atol=1e-12
    )
    np.testing.assert_allclose(
      clf.predict_log_proba(xk), want_log, rtol=1e-12, atol=1e-12
    )


def test_select_from_model_keeps_the_features_asked():
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  from sklearn.feature_selection import SelectFromModel  # pylint: disable=g-import-not-at-top

  x, y = load_digits(return_X_y=True)
  x = StandardScaler().fit_transform(x)
  selector = SelectFromModel(LinearClassifier(), max_features=20).fit(x, y)
  assert selector.transform(x).shape == (len(x), 20)
  # It keeps the 20 features of largest Σ_k |W_jk| (the L1 norm of each
  # feature's weights across classes, SelectFromModel's rule for 2-D coef_).
  norms = np.abs(selector.estimator_.coef_).sum(0)
  assert norms.shape == (64,)
  np.testing.assert_array_equal(
    np.flatnonzero(selector.get_support()), np.sort(np.argsort(-norms)[:20])
  )


def test_permutation_importance_ranks_the_informative_features():
  from sklearn.inspection import permutation_importance  # pylint: disable=g-import-not-at-top

  # Labels depend on features 0 and 1 only; 2..5 are noise.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(400, 6))
  y = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "yes", "no")
  clf = LinearClassifier(reg_strength=1e-3).fit(x, y)
  result = permutation_importance(clf, x, y, n_repeats=5, random_state=0)
  ranking = np.argsort(-result.importances_mean)
  assert list(ranking[:2]) == [0, 1]
  assert result.importances_mean[0] > 0.3
  assert np.all(np.abs(result.importances_mean[2:]) < 0.05)
  # coef_ [1, D] orders the features the same way (standard-normal inputs),
  # and its noise weights are small.
  w = np.abs(clf.coef_[0])
  np.testing.assert_array_equal(np.argsort(-w)[:2], [0, 1])
  assert w[2:].max() < 0.2 * w[1]
