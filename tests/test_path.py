"""linear_jax.path: the λ path against scikit-learn and a plain reference solve."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from linear_jax import path
from linear_jax.checks import LinearJaxError
from linear_jax.objective import objective


def problem(n=240, d=12, c=3, seed=0):
  """Overlapping Gaussian classes with correlated features (ill-conditioned G)."""
  rng = np.random.default_rng(seed)
  mix = rng.normal(size=(d, d)) * np.logspace(0, -2, d)[:, None]
  y = rng.integers(0, c, n)
  centers = rng.normal(size=(c, d))
  x = (rng.normal(size=(n, d)) + centers[y]) @ mix + 0.3
  return x.astype(np.float32), y.astype(np.int32)


def softmax_objective64(w, b, lam, x, y):
  return float(
    objective(
      {"W": np.asarray(w, np.float64), "b": np.asarray(b, np.float64)},
      np.asarray(x, np.float64),
      y,
      loss="softmax",
      reg_strength=lam,
    )
  )


@pytest.mark.slow
@pytest.mark.parametrize("warm_start", [True, False])
def test_softmax_path_matches_sklearn_objective(x64, warm_start):
  # In float64 both solvers converge; their objectives must agree far below
  # the 1e-4 the benchmark demands, and the λ = 1/(2CN) mapping is exact.
  x, y = problem()
  x = x.astype(np.float64)
  n = len(y)
  cs = np.logspace(-2, 2, 5)
  lams = 1 / (2 * cs * n)
  r = path.lambda_path(
    x,
    y,
    x[:60],
    y[:60],
    reg_strengths=lams,
    rank=6,
    max_iter=2000,
    tol=1e-10,
    ftol=0.0,
    warm_start=warm_start,
  )
  for k, c in enumerate(cs):
    m = LogisticRegression(C=c, solver="lbfgs", tol=1e-12, max_iter=10000).fit(
      x.astype(np.float64), y
    )
    theirs = softmax_objective64(m.coef_.T, m.intercept_, lams[k], x, y)
    ours = softmax_objective64(
      r.params["W"][k], r.params["b"][k], lams[k], x, y
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-7)
    np.testing.assert_allclose(r.objective[k], ours, rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["squared_svm", "softmax"])
def test_smooth_losses_reach_a_stationary_point(x64, loss):
  # Gradient of the library objective at the returned W, b (original,
  # uncentred coordinates) vanishes: the preconditioning and the centring are
  # undone exactly.
  x, y = problem(seed=1)
  x = x.astype(np.float64)
  lams = np.array([1e-1, 1e-3])
  r = path.lambda_path(
    x,
    y,
    x,
    y,
    reg_strengths=lams,
    loss=loss,
    rank=4,
    max_iter=3000,
    tol=1e-10,
    ftol=0.0,
  )
  for k, lam in enumerate(lams):
    options = {"margin": 1.0} if loss != "softmax" else {}
    g = jax.grad(objective)(
      {"W": jnp.asarray(r.params["W"][k]), "b": jnp.asarray(r.params["b"][k])},
      x.astype(np.float64),
      y,
      loss=loss,
      reg_strength=lam,
      **options,
    )
    assert max(np.abs(g["W"]).max(), np.abs(g["b"]).max()) < 1e-7


@pytest.mark.slow
def test_float32_path_selection_and_accuracies():
  x, y = problem(n=400, seed=2)
  xv, yv = problem(n=200, seed=3)
  lams = np.logspace(1, -4, 6)
  r = path.lambda_path(x, y, xv, yv, xv, yv, reg_strengths=lams, rank=6)
  # Objectives fall as λ falls (a smaller penalty never costs more).
  assert np.all(np.diff(r.objective) < 0)
  manual = [
    np.mean(np.argmax(xv @ r.params["W"][k] + r.params["b"][k], 1) == yv)
    for k in range(len(lams))
  ]
  np.testing.assert_allclose(r.val_accuracy, manual, atol=1e-6)
  assert r.best == path.select(lams, r.val_accuracy)
  assert r.val_accuracy[r.best] == r.val_accuracy.max()
  # λ = 10 pins W near 0: close to chance on 3 classes.
  assert r.val_accuracy[0] < r.val_accuracy.max()


def test_select_breaks_ties_toward_larger_lambda():
  assert path.select([1e-3, 1e-1, 1e-2], [0.9, 0.9, 0.8]) == 1


def test_minimize_lbfgs_on_a_quadratic(x64):
  a = np.diag(np.logspace(0, 3, 20))
  b = np.arange(20.0)
  z, value, it, gnorm = path.minimize_lbfgs(
    lambda z: 0.5 * z @ a @ z - b @ z, jnp.zeros(20), max_iter=500, tol=1e-10
  )
  # Stops at ‖g‖ ≤ 1e-10 or when float64 sees no decrease of f; near the
  # minimum f − f* ≈ ½ eᵀAe hides errors e ≈ sqrt(eps64 · |f| / λ_min) ~ 1e-7.
  np.testing.assert_allclose(z, np.linalg.solve(a, b), rtol=1e-6)
  assert it < 500


def test_nystrom_recovers_a_low_rank_gram():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 40))
  v, s, tail = path.nystrom_gram(
    jnp.asarray(x, jnp.float32), rank=8, key=jax.random.key(0)
  )
  g = x.T @ x / 300
  approx = (np.asarray(v) * np.asarray(s)) @ np.asarray(v).T
  # Rank 5 < 8: exact up to float32 rounding of 300-term sums.
  np.testing.assert_allclose(approx, g, atol=1e-4 * np.abs(g).max())
  assert float(tail) < 1e-4 * float(s[0])


def test_bad_input():
  x, y = problem(n=20)
  with pytest.raises(LinearJaxError, match="λ"):
    path.lambda_path(x, y, x, y, reg_strengths=[-1.0])
  with pytest.raises(LinearJaxError, match="empty"):
    path.lambda_path(x, y, x, y, reg_strengths=[])
  with pytest.raises(LinearJaxError, match="one label per row"):
    path.lambda_path(x, y[:5], x, y, reg_strengths=[1.0])


@pytest.mark.slow
def test_row_space_path_equals_the_full_path(x64):
  # N < D: the row-space solve must give the same minimizers as the
  # D-dimensional one (both converged in float64).
  rng = np.random.default_rng(5)
  x = rng.normal(size=(40, 90)) + 1.0
  y = rng.integers(0, 3, 40)
  lams = np.array([1e-1, 1e-2])
  kw = dict(reg_strengths=lams, max_iter=3000, tol=1e-10, ftol=0.0, rank=16)
  full = path.lambda_path(x, y, x, y, row_space=False, **kw)
  reduced = path.lambda_path(x, y, x, y, row_space=True, **kw)
  np.testing.assert_allclose(reduced.objective, full.objective, rtol=1e-9)
  np.testing.assert_allclose(reduced.params["W"], full.params["W"], atol=1e-6)
  np.testing.assert_allclose(reduced.params["b"], full.params["b"], atol=1e-6)
  basis, _ = path.row_space_basis(x)
  np.testing.assert_allclose(
    basis.T @ basis, np.eye(basis.shape[1]), atol=1e-10
  )
  assert basis.shape == (90, 39)  # centring removes one dimension
