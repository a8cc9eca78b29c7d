"""benchmarks/sparse.py: the C mapping it uses, and the peak-RSS parsing."""

import jax
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from benchmarks import sparse as bench
from linear_jax.objective import objective


@jax.jit
def softmax_gradient(params, x, y, reg_strength):
  """∇ of the softmax objective at ``params``; λ is an argument, so both
  mappings' λ share one program.
  """
  return jax.grad(objective)(
    params, x, y, loss="softmax", reg_strength=reg_strength
  )


@pytest.mark.slow
@pytest.mark.parametrize("num_classes", [2, 3])
def test_c_mapping_makes_scikit_learns_solution_our_minimizer(x64, num_classes):
  """At λ = reg_strength(C, N, K), scikit-learn's L-BFGS logistic fit (C, an
  unregularized intercept) is a stationary point of our softmax objective.
  """
  rng = np.random.default_rng(num_classes)
  n, d, c = 200, 5, 0.3
  y = rng.integers(0, num_classes, n)
  x = rng.normal(size=(n, d)) + 0.7 * y[:, None]
  ref = LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(x, y)
  if num_classes == 2:  # one weight vector w = W_1 − W_0, symmetric columns
    w = np.stack([-ref.coef_[0], ref.coef_[0]], axis=1) / 2
    b = np.array([-ref.intercept_[0], ref.intercept_[0]]) / 2
  else:
    w, b = ref.coef_.T, ref.intercept_
  lam = bench.reg_strength(c, n, num_classes)
  grad = softmax_gradient({"W": w, "b": b}, x, y, lam)
  assert np.abs(grad["W"]).max() < 1e-7 and np.abs(grad["b"]).max() < 1e-7
  # The other mapping is wrong by a factor of 2: not stationary.
  wrong = lam * (2 if num_classes == 2 else 0.5)
  grad = softmax_gradient({"W": w, "b": b}, x, y, wrong)
  assert np.abs(grad["W"]).max() > 1e-4


def test_peak_rss_is_read_from_time_v():
  report = "\tMaximum resident set size (kbytes): 1492352\n\tExit status: 0\n"
  assert bench.max_rss_bytes(report) == 1492352 * 1024
  assert bench.max_rss_bytes("no report") is None
