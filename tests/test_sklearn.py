"""linear_jax.sklearn.LinearClassifier: scikit-learn's checks, pipelines, no recompiles."""

import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from sklearn.datasets import load_digits
from sklearn.feature_selection import SelectFromModel
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
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
  # float32 rows train in float32 (float64 ones would train in float64 here).
  clf = LinearClassifier(reg_strength=1e-2).fit(x.astype(np.float32), y)
  assert clf.coef_.dtype == np.float32
  assert list(clf.classes_) == ["ant", "bee", "cow"]
  assert clf.score(x, y) >= 0.9
  p = clf.predict_proba(x)
  np.testing.assert_allclose(p.sum(1), 1, rtol=1e-12)
  np.testing.assert_array_equal(clf.classes_[p.argmax(1)], clf.predict(x))
  # The fitted weights minimize the library's objective: its gradient there
  # is at float32 rounding level (eps32 · sqrt(N) · feature scale).
  codes = np.searchsorted(clf.classes_, y)
  params = {
    "W": np.asarray(clf.coef_.T, np.float64),  # coef_ is [C, D]
    "b": np.asarray(clf.intercept_, np.float64),
  }
  grad = jax.jit(
    jax.grad(
      lambda p: objective(p, x, codes, loss="softmax", reg_strength=1e-2)
    )
  )(params)
  tol = 100 * np.finfo(np.float32).eps * np.sqrt(len(x))
  assert max(np.abs(grad["W"]).max(), np.abs(grad["b"]).max()) < tol


@pytest.mark.slow
def test_values_beyond_float32_are_refused_in_fit_and_predict():
  x, y = blobs()
  far = x.copy()
  far[4, 2] = 1e40  # finite in float64, inf in float32
  with pytest.raises(ValueError) as e:
    LinearClassifier(optimizer="lbfgs").fit(far, y)
  message = str(e.value)
  assert "feature 2 of example 4" in message and "1e+40" in message
  assert "learning" not in message
  clf = LinearClassifier(epochs=5).fit(x, y)
  with pytest.raises(ValueError, match="feature 0 of example 0, 1e"):
    clf.predict(np.full((3, 5), 1e300))


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["lbfgs", "sgd"])
def test_divergence_names_the_data_scale_and_fits_the_optimizer(optimizer):
  """Features in float32 range but far from unit scale (3 and 1e20..1e30)."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 3))
  y = (x[:, 0] > 0).astype(int)
  x[:, 2] *= 1e20 if optimizer == "lbfgs" else 1e30
  with pytest.raises(ValueError) as e:
    LinearClassifier(
      optimizer=optimizer,
      batch_size=None if optimizer == "lbfgs" else 32,
      learning_rate=0.01,
      epochs=20,
    ).fit(x, y)
  message = str(e.value)
  assert "diverged" in message and "feature 2" in message
  assert "StandardScaler" in message and "try" not in message
  if optimizer == "lbfgs":
    assert "lbfgs has no learning rate" in message
    assert "learning_rate=" not in message


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


@pytest.mark.slow
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


def test_buckets_cover_each_size_with_at_most_a_quarter_more():
  sizes = np.arange(1, 4097)
  got = np.array([lj_sklearn._bucket(int(n), 64) for n in sizes])
  assert np.all(got >= sizes) and np.all(got[sizes <= 64] == 64)
  assert np.all(got[sizes > 64] <= 1.25 * sizes[sizes > 64])
  # Few programs: 4 buckets per doubling.
  assert len(np.unique(got[sizes > 64])) == 4 * 6
  assert [lj_sklearn._bucket(n, 64) for n in (65, 80, 81, 240, 241)] == [
    80,
    80,
    96,
    256,
    256,
  ]


@pytest.mark.slow
def test_nearby_shapes_share_one_program_and_weights_do_not_add_one():
  # epochs=7: a static choice no other test uses, so no earlier fit in
  # this process compiled these programs.
  x, y = blobs(n=233)
  LinearClassifier(epochs=7).fit(x[:200, :4], y[:200])  # 224 rows, 8 feat.
  before = lj_sklearn.TRACE_COUNT[0]
  LinearClassifier(epochs=7).fit(x[:210], y[:210])
  LinearClassifier(epochs=7, class_weight="balanced").fit(x[:220, :3], y[:220])
  assert lj_sklearn.TRACE_COUNT[0] == before
  LinearClassifier(epochs=7).fit(x, y)  # 233 rows: the next bucket, 256
  assert lj_sklearn.TRACE_COUNT[0] == before + 1


def test_rows_pad_only_in_full_batch_and_features_only_under_l2():
  x = np.ones((100, 5))
  weights, codes = np.ones(100, np.float32), np.zeros(100, np.int64)
  shapes = {
    (reg, full): lj_sklearn._padded(x, weights, codes, reg, full)[0].shape
    for reg in ("l2", "none", "l1", "elastic_net")
    for full in (True, False)
  }
  assert shapes == {
    ("l2", True): (112, 8),
    ("l2", False): (100, 8),
    ("none", True): (112, 8),
    ("none", False): (100, 8),
    ("l1", True): (112, 5),
    ("l1", False): (100, 5),
    ("elastic_net", True): (112, 5),
    ("elastic_net", False): (100, 5),
  }
  padded, w, c = lj_sklearn._padded(x, weights, codes, "l2", True)
  assert padded.dtype == np.float32 and np.all(padded[100:] == 0)
  assert np.all(padded[:, 5:] == 0) and np.all(padded[:100, :5] == 1)
  assert np.all(w[100:] == 0) and np.all(w[:100] == 1) and len(c) == 112


@pytest.mark.slow
@pytest.mark.parametrize(
  "options",
  [
    {},  # full-batch L-BFGS: rows and features padded
    {"optimizer": "sgd", "batch_size": 16, "epochs": 5},  # features only
    # Features only, under decoupled weight decay and no penalty.
    {"optimizer": "adamw", "reg": "none", "batch_size": 16, "epochs": 5},
  ],
  ids=["lbfgs", "sgd", "adamw"],
)
def test_padded_fit_equals_the_unpadded_fit(x64, monkeypatch, options):
  """Rows of weight 0 and zero features change only the float rounding.

  SGD's steps are then equal to float64 rounding; 100 L-BFGS iterations
  amplify rounding through their line searches, but both fits end within
  1e-6 of each other (seen: 3e-9), where a padded row counted or a feature
  misplaced moves the coefficients by over 1e-2.
  """
  x, y = three_class_problem(n=150, d=5)
  weights = {10: 2.0, 20: 1.0, 30: 0.5}
  padded = LinearClassifier(class_weight=weights, **options).fit(x, y)
  monkeypatch.setattr(lj_sklearn, "MAX_PADDED_ENTRIES", 0)
  plain = LinearClassifier(class_weight=weights, **options).fit(x, y)
  assert padded.coef_.shape == plain.coef_.shape == (3, 5)
  atol = 1e-6 if options == {} else 1e-12
  np.testing.assert_allclose(padded.coef_, plain.coef_, rtol=0, atol=atol)
  np.testing.assert_allclose(
    padded.intercept_, plain.intercept_, rtol=0, atol=atol
  )


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_select_from_model_keeps_the_features_asked():

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


@pytest.mark.slow
def test_permutation_importance_ranks_the_informative_features():

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


def softmax_params_from_sklearn(coef, intercept, c):
  """LogisticRegression's (coef_, intercept_) as linear_jax's {W [D, C], b}.

  Binary: sklearn fits one vector u (scores s_1 − s_0 = xu + c); the softmax
  optimum with an L2 penalty on both columns is W = [−u/2, u/2] (the penalty
  picks the centred pair among all with w_1 − w_0 = u).
  """
  w, b = coef.T, intercept
  if c == 2:
    w, b = np.concatenate([-w / 2, w / 2], 1), np.array([-b[0], b[0]]) / 2
  return {"W": w, "b": b}


@jax.jit
def objective_derivatives(params_list, x, codes, lam, class_weight):
  """The softmax objective's gradient at each of ``params_list`` and its
  Hessian at the first, over the flattened parameters (one program).

  Returns:
    ``([∇f(θ) for θ in params_list], ∇²f(θ_0))``, with f the objective of
    ``distance_tolerance``.
  """
  flat, unravel = ravel_pytree(params_list[0])

  def f(theta):
    return objective(
      unravel(theta),
      x,
      codes,
      loss="softmax",
      reg_strength=lam,
      class_weight=class_weight,
    )

  gradients = [jax.grad(f)(ravel_pytree(p)[0]) for p in params_list]
  return gradients, jax.hessian(f)(flat)


def distance_tolerance(x, codes, params_list, lam, class_weight):
  """How far apart two computed minimizers θ_a, θ_b may be, ‖θ_a − θ_b‖.

  For f μ-strongly convex, ‖θ − θ*‖ ≤ ‖∇f(θ)‖ / μ, so the two points are
  within (‖∇f(θ_a)‖ + ‖∇f(θ_b)‖) / μ; × 2 covers the change of curvature
  between them. f is the float64 objective both estimators minimize; μ the
  smallest Hessian eigenvalue at θ_a off the one flat direction (b + t·1
  leaves softmax unchanged, so b is compared centred; the L2 penalty curves
  every W direction). Added: the rounding of a solve at condition number
  κ = λ_max / μ, κ · eps64 · ‖θ‖.
  """
  flat, _ = ravel_pytree(params_list[0])
  gradients, hessian = objective_derivatives(
    params_list, x, codes, lam, class_weight
  )
  grads = [float(np.linalg.norm(g)) for g in gradients]
  eigs = np.sort(np.linalg.eigvalsh(np.asarray(hessian)))
  mu, kappa = eigs[1], eigs[-1] / eigs[1]
  eps = np.finfo(np.float64).eps
  return 2 * sum(grads) / mu + kappa * eps * np.linalg.norm(flat)


@pytest.mark.slow
@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("class_weight", [None, "balanced", {10: 3.0}])
def test_coef_equals_logistic_regression(x64, classes, class_weight):
  # LogisticRegression(C) minimizes Σ w_i L_i + ½/C ‖coef‖² (w_i the class
  # weight of y_i); linear_jax minimizes Σ w_i L_i / Σ w_i + λ Σ W² over
  # W [D, C]: the same minimizer when λ = 1/(2 C Σw) for ≥ 3 classes, and
  # λ = 1/(C Σw) for two (W = [−u/2, u/2] makes λ ΣW² = ½λ‖u‖²). Both
  # solve to float64 precision (newton-cholesky; L-BFGS for 100 epochs).
  x, y = three_class_problem(counts=[150, 60, 20][:classes])
  if isinstance(class_weight, dict):
    class_weight = {**class_weight, 20: 0.5}
  c_reg = 0.5

  def sklearn_fit(c):
    return LogisticRegression(
      C=c, class_weight=class_weight, solver="newton-cholesky", tol=1e-12
    ).fit(x, y)

  theirs = sklearn_fit(c_reg)
  weights = compute_class_weight(class_weight, classes=theirs.classes_, y=y)
  codes = np.searchsorted(theirs.classes_, y)
  lam = 1 / ((1 if classes == 2 else 2) * c_reg * weights[codes].sum())
  ours = LinearClassifier(reg_strength=lam, class_weight=class_weight)
  ours.fit(x, y)
  assert ours.coef_.dtype == np.float64
  np.testing.assert_array_equal(ours.classes_, theirs.classes_)
  assert ours.coef_.shape == theirs.coef_.shape
  assert ours.intercept_.shape == theirs.intercept_.shape
  mine = softmax_params_from_sklearn(ours.coef_, ours.intercept_, classes)
  sk = softmax_params_from_sklearn(theirs.coef_, theirs.intercept_, classes)
  tol = distance_tolerance(x, codes, [mine, sk], lam, weights)
  # coef_ and the centred intercept_ are linear maps of θ of norm ≤ √2
  # (binary coef_ = w_1 − w_0), so each gap is within √2 · tol.
  centred = lambda b: b - b.mean() if len(b) > 1 else b

  def gap(model):
    return max(
      np.linalg.norm(ours.coef_ - model.coef_),
      np.linalg.norm(centred(ours.intercept_) - centred(model.intercept_)),
    )

  assert gap(theirs) <= np.sqrt(2) * tol, (gap(theirs), tol)
  # The tolerance tells mappings apart: C off by 2× (the binary/multiclass
  # factor) is far outside it.
  assert gap(sklearn_fit(2 * c_reg)) > 1e3 * tol
  # |Δ(x·coef_ᵀ + b)| ≤ (‖x‖ + 1) · max gap.
  np.testing.assert_allclose(
    ours.decision_function(x),
    theirs.decision_function(x),
    rtol=0,
    atol=(np.linalg.norm(x, axis=1).max() + 1) * np.sqrt(2) * tol,
  )


def test_class_weight_validation():
  x, y = blobs()
  with pytest.raises(ValueError, match="class_weight"):
    LinearClassifier(class_weight={"ant": -1.0}).fit(x, y)
  with pytest.raises(ValueError, match="not in class_weight|class_weight"):
    LinearClassifier(class_weight={"eel": 2.0}).fit(x, y)
  with pytest.raises(ValueError, match="balanced"):
    LinearClassifier(class_weight="even").fit(x, y)


@pytest.mark.slow
def test_class_weight_shifts_decisions_and_refits_do_not_recompile():
  x, y = blobs()
  plain = LinearClassifier().fit(x, y)
  heavy = LinearClassifier(class_weight={"ant": 50.0}).fit(x, y)
  # Weighting "ant" up makes it predicted more often, never less.
  assert (heavy.predict(x) == "ant").sum() > (plain.predict(x) == "ant").sum()
  before = lj_sklearn.TRACE_COUNT[0]
  LinearClassifier(class_weight="balanced").fit(x[::-1], y[::-1])
  heavy.set_params(class_weight={"bee": 2.0}).fit(x + 1.0, y)
  assert lj_sklearn.TRACE_COUNT[0] == before


@pytest.mark.slow
def test_zero_class_weight_with_minibatches():
  # Minibatches of only zero-weight examples happen (batch 2, "ant" weighs
  # 0); their steps shrink W by the penalty alone, and training stays
  # finite. The model then hardly predicts "ant".
  x, y = blobs()
  clf = LinearClassifier(
    class_weight={"ant": 0.0}, optimizer="sgd", batch_size=2, epochs=3
  ).fit(x, y)
  assert np.all(np.isfinite(clf.coef_))
  assert (clf.predict(x) == "ant").sum() < 0.2 * (y == "ant").sum()


@pytest.mark.slow
def test_sparse_input_trains_sparse_and_equals_dense():
  """scipy.sparse X is accepted by fit, predict and decision_function and
  gives the dense input's model (same objective, float32 rounding apart).
  """
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  x, y = blobs(n=200, seed=3)
  x[np.abs(x) < 0.8] = 0.0  # ~60 % zeros
  xs = scipy.sparse.csr_matrix(x)
  options = dict(reg_strength=1e-2, optimizer="sgd", learning_rate=0.1)
  options.update(epochs=20, batch_size=32)
  dense = LinearClassifier(**options).fit(x, y)
  sparse_fit = LinearClassifier(**options).fit(xs, y)
  np.testing.assert_allclose(
    sparse_fit.coef_, dense.coef_, rtol=1e-4, atol=1e-5
  )
  np.testing.assert_array_equal(sparse_fit.predict(xs), dense.predict(x))
  np.testing.assert_allclose(
    sparse_fit.decision_function(xs.tocsc()),
    dense.decision_function(x),
    rtol=1e-4,
    atol=1e-5,
  )
