"""linear_jax.sparse_path: the λ path on CSR rows reaches the dense path's
minimizers (float64), with the centring implicit.
"""

import numpy as np
import pytest

from linear_jax import LinearJaxError, path, sparse_path
from linear_jax.data import distributions


@pytest.mark.slow
def test_sparse_path_matches_the_dense_path(x64):
  spec = distributions.sparse_text(
    "news20", num_features=300, num_classes=3, topic_words=80, nonzeros=(8, 20)
  )
  x, y, xt, yt = spec.splits(0, train_size=300, test_size=100)
  x, xt = x.astype(np.float64), xt.astype(np.float64)
  lams = [1e-2, 1e-3]
  options = dict(reg_strengths=lams, max_iter=300, tol=1e-9, ftol=0.0)
  got = sparse_path.sparse_lambda_path(x, y, xt, yt, block_rows=64, **options)
  want = path.lambda_path(
    x.toarray(), y, xt.toarray(), yt, row_space=False, **options
  )
  # Both converge (gradient tolerance); the minimizer is unique (λ > 0).
  np.testing.assert_allclose(got.objective, want.objective, rtol=1e-10)
  scale = np.abs(want.params["W"]).max()
  np.testing.assert_allclose(
    got.params["W"], want.params["W"], rtol=0, atol=1e-6 * scale
  )
  np.testing.assert_allclose(
    got.params["b"], want.params["b"], rtol=0, atol=1e-6 * scale
  )
  # The same correct counts (one path reports float32 fractions).
  count = lambda r: np.rint(np.asarray(r.val_accuracy, np.float64) * len(yt))
  np.testing.assert_array_equal(count(got), count(want))
  assert got.best == want.best


def test_dense_rows_are_refused():
  with pytest.raises(LinearJaxError, match="takes scipy.sparse rows"):
    sparse_path.sparse_lambda_path(
      np.ones((4, 2)), [0, 1, 0, 1], np.ones((2, 2)), [0, 1], reg_strengths=[1]
    )
