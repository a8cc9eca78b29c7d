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


# The library objective and its gradient, jitted (loss static).
jit_objective = jax.jit(objective, static_argnames="loss")
jit_gradient = jax.jit(jax.grad(objective), static_argnames="loss")


def softmax_objective64(w, b, lam, x, y):
  return float(
    jit_objective(
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
    g = jit_gradient(
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


@pytest.mark.slow
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
  with pytest.raises(LinearJaxError, match="x_val has 11 features"):
    path.lambda_path(x, y, x[:, 1:], y, reg_strengths=[1.0])
  with pytest.raises(LinearJaxError, match=r"labels must lie in \[0, 3\)"):
    path.lambda_path(x, y, x, y + 1, reg_strengths=[1.0], num_classes=3)


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


@pytest.mark.parametrize("split", ["y_train", "y_val", "y_test"])
def test_float_labels_are_refused(split):
  """0.5 and 1.5 would be truncated to classes 0 and 1 without a word."""
  x, y = problem(n=20)
  labels = {"y_train": y, "y_val": y, "y_test": y}
  labels[split] = y + 0.5
  with pytest.raises(LinearJaxError) as e:
    path.lambda_path(
      x,
      labels["y_train"],
      x,
      labels["y_val"],
      x,
      labels["y_test"],
      reg_strengths=[1.0],
    )
  assert f"{split} must hold integer class labels" in str(e.value)
  assert "found 1.5 (float64)" in str(e.value) or "found 0.5" in str(e.value)
  assert "\n" not in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("num_classes", [2, 3])
def test_reg_strength_from_C_matches_sklearn(x64, num_classes):
  # scikit-learn's LogisticRegression at C and lambda_path at
  # λ = reg_strength_from_C(C) are the same problem: the same weights
  # (for two classes scikit-learn's one vector w = w₁ − w₀) to 1e-5 of the
  # largest weight, both solved to a 1e-12 gradient in float64. The other
  # class count's mapping (factor 2 off) moves the weights by > 1e-2.
  x, y = problem(n=90, d=5, c=num_classes, seed=4)
  x = x.astype(np.float64)
  c_value = 0.05
  lam = path.reg_strength_from_C([c_value], len(y), num_classes)
  r = path.lambda_path(
    x, y, x, y, reg_strengths=lam, max_iter=3000, tol=1e-12, ftol=0.0
  )
  m = LogisticRegression(C=c_value, tol=1e-12, max_iter=10000).fit(x, y)
  w, b = r.params["W"][0], r.params["b"][0]
  if num_classes == 2:
    w, b = w[:, 1] - w[:, 0], b[1:] - b[:1]
  else:
    w, b = w.T, b - b.mean()
    m.intercept_ -= m.intercept_.mean()
  scale = np.abs(m.coef_).max()
  np.testing.assert_allclose(
    w.reshape(m.coef_.shape), m.coef_, atol=1e-5 * scale
  )
  np.testing.assert_allclose(b, m.intercept_, atol=1e-5 * scale)


def test_reg_strength_from_C_formula_and_bad_C():
  np.testing.assert_allclose(
    path.reg_strength_from_C([1.0, 0.5], 100, 10), [1 / 200, 1 / 100]
  )
  np.testing.assert_allclose(path.reg_strength_from_C(2.0, 100, 2), 1 / 200)
  with pytest.raises(LinearJaxError, match="C must be > 0"):
    path.reg_strength_from_C([1.0, 0.0], 100, 3)


@pytest.mark.slow
def test_one_compilation_for_any_lambdas():
  x, y = problem(n=100, seed=6)
  kw = dict(rank=4, max_iter=20)
  path.lambda_path(x, y, x, y, reg_strengths=[1.0, 0.1, 0.01], **kw)
  before = dict(path.TRACES)
  r = path.lambda_path(x, y, x, y, reg_strengths=[0.3, 3e-3], **kw)
  assert before == path.TRACES  # new values and count of λ: no retrace
  assert len(r.objective) == 2
  kw.update(max_iter=2, tol=0.0, ftol=0.0)  # another budget: no retrace
  r = path.lambda_path(x, y, x, y, reg_strengths=[0.3, 3e-3], **kw)
  assert before == path.TRACES
  np.testing.assert_array_equal(r.iterations, [2, 2])  # the budget held


@pytest.mark.slow
def test_callback_rows_and_resuming_from_init_params():
  x, y = problem(n=150, seed=7)
  lams = np.array([1.0, 0.1, 0.01])
  rows = {}
  full = path.lambda_path(
    x,
    y,
    x[:50],
    y[:50],
    reg_strengths=lams,
    rank=4,
    callback=lambda k, row: rows.setdefault(k, row),
  )
  assert sorted(rows) == [0, 1, 2]
  for k, row in rows.items():
    assert row["reg_strength"] == lams[k]
    assert row["objective"] == pytest.approx(float(full.objective[k]))
    assert row["val_accuracy"] == full.val_accuracy[k]
    np.testing.assert_array_equal(row["params"]["W"], full.params["W"][k])
    assert row["seconds"] > 0 and row["evaluations"] >= row["iterations"]
  # A path interrupted after λ = 1 continues from its solution: the same
  # minimizers as the uninterrupted path, to the solver's tolerance (L
  # within 10·ftol relative, since both stop by the ftol rule).
  rest = path.lambda_path(
    x,
    y,
    x[:50],
    y[:50],
    reg_strengths=lams[1:],
    rank=4,
    init_params=rows[0]["params"],
  )
  np.testing.assert_allclose(rest.objective, full.objective[1:], rtol=1e-6)


@pytest.mark.slow
def test_float16_storage_agrees_with_float32():
  # Rows stored as float16 (sums in float32) solve the problem of the
  # rounded rows: |L16* − L32*| is at most the first-order effect of the
  # rounding, u16 · Σ_i Σ_j |x_ij| |(W dS_iᵀ)_j| / N at either minimizer
  # (u16 = 2⁻¹¹), plus both solvers' stopping tolerance (ftol = 1e-7).
  x, y = problem(n=300, seed=8)
  xv, yv = problem(n=100, seed=9)
  lams = np.array([1e-1, 1e-3])
  kw = dict(reg_strengths=lams, rank=6)
  r32 = path.lambda_path(x, y, xv, yv, **kw)
  r16 = path.lambda_path(x.astype(np.float16), y, xv, yv, **kw)
  for k in range(2):
    w, b = r32.params["W"][k], r32.params["b"][k]
    s = x.astype(np.float64) @ w + b
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ds = p - np.eye(3)[y]
    bound = 2.0**-11 * np.sum(np.abs(x) * np.abs(ds @ w.T)) / len(y)
    gap = abs(float(r16.objective[k]) - float(r32.objective[k]))
    assert gap <= 2 * bound + 1e-6 * float(r32.objective[k]), (k, gap, bound)
  np.testing.assert_allclose(r16.val_accuracy, r32.val_accuracy, atol=0.02)


def test_refuses_nan_features_and_paths_over_the_budget():
  x, y = problem(n=40)
  bad = x.copy()
  bad[3, 2] = np.nan
  with pytest.raises(LinearJaxError, match="NaN or Inf"):
    path.lambda_path(bad, y, x, y, reg_strengths=[1.0])
  with pytest.raises(LinearJaxError, match="memory budget") as e:
    path.lambda_path(x, y, x, y, reg_strengths=[1.0], memory_budget=4096)
  assert "\n" not in str(e.value)


@pytest.mark.slow
def test_vmapped_chunks_and_small_blocks_give_the_warm_path(x64):
  # The accelerator route (all λ of a chunk at once under vmap, from one
  # start; here chunks of 2 for 3 λ, the last one padded) and passes over
  # 16-row blocks reach the minimizers of the CPU route (warm starts, one
  # block): objectives equal to the float64 solver tolerance.
  x, y = problem(n=120, seed=10)
  x = x.astype(np.float64)
  lams = np.array([1e-1, 1e-2, 1e-3])
  kw = dict(reg_strengths=lams, rank=6, max_iter=3000, tol=1e-10, ftol=0.0)
  warm = path.lambda_path(x, y, x[:40], y[:40], warm_start=True, **kw)
  vmapped = path.lambda_path(
    x,
    y,
    x[:40],
    y[:40],
    warm_start=False,
    lambda_chunk=2,
    block_rows=16,
    **kw,
  )
  np.testing.assert_allclose(vmapped.objective, warm.objective, rtol=1e-10)
  np.testing.assert_allclose(
    vmapped.params["W"],
    warm.params["W"],
    atol=1e-6 * np.abs(warm.params["W"]).max(),
  )
  np.testing.assert_array_equal(vmapped.val_accuracy, warm.val_accuracy)
