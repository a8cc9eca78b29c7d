"""linear_jax.sparse: CSR rows give the dense path's scores, gradients and
training steps (float64), compile once, and refuse what they cannot hold.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

from linear_jax import LinearJaxError, sparse
from linear_jax.objective import objective
from linear_jax.scores import linear_scores
from linear_jax.train import epoch as epoch_lib

LOSSES = ("svm", "squared_svm", "crammer_singer", "softmax")


def random_rows(n=60, d=30, seed=0, density=0.15):
  """CSR float64 rows with a few empty rows and one long row."""
  rng = np.random.default_rng(seed)
  x = scipy.sparse.random(
    n, d, density=density, format="lil", random_state=seed, dtype=np.float64
  )
  x[3, :] = 0  # an empty row
  x[n - 1, :] = rng.normal(size=d)  # the longest row is the last one
  x = x.tocsr()
  x.data = rng.normal(size=x.nnz)
  x.sort_indices()
  return x


def params_for(d, c, seed=1, dtype=np.float64):
  rng = np.random.default_rng(seed)
  return {
    "W": jnp.asarray(rng.normal(size=(d, c)), dtype),
    "b": jnp.asarray(rng.normal(size=c), dtype),
  }


@pytest.mark.slow
def test_scores_equal_the_dense_product(x64):
  x = random_rows()
  rows = sparse.to_device(x, np.float64)
  assert rows.width == np.diff(x.indptr).max() == 30
  params = params_for(30, 4)
  dense = np.asarray(x.toarray() @ params["W"] + params["b"])
  # Minibatch rows in any order, repeated, near the end of the arrays
  # (windows moved back by dynamic_slice) and empty.
  idx = jnp.asarray([59, 3, 0, 58, 59, 17])
  picked, blocked, full = jax.jit(
    lambda p, r, i: (
      linear_scores(p, r[i]),
      sparse.map_scores(p, r, block_rows=7),
      linear_scores(p, r),
    )
  )(params, rows, idx)
  np.testing.assert_allclose(picked, dense[np.asarray(idx)], rtol=1e-13)
  np.testing.assert_allclose(blocked, dense, rtol=1e-13)
  np.testing.assert_allclose(full, dense, rtol=1e-13)


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_objective_gradients_equal_the_dense_ones(x64, loss):
  x = random_rows(seed=2)
  y = np.random.default_rng(3).integers(0, 4, size=60)
  params = params_for(30, 4, seed=4)
  rows = sparse.to_device(x, np.float64)
  idx = jnp.arange(60)
  opts = {} if loss == "softmax" else {"margin": 1.0}

  def on_sparse(p):
    return objective(p, rows[idx], y, loss=loss, reg_strength=0.1, **opts)

  def on_dense(p):
    return objective(p, x.toarray(), y, loss=loss, reg_strength=0.1, **opts)

  # Both layouts' value and gradient in one program.
  (value, got), (want_value, want) = jax.jit(
    lambda p: (
      jax.value_and_grad(on_sparse)(p),
      jax.value_and_grad(on_dense)(p),
    )
  )(params)
  np.testing.assert_allclose(value, want_value, rtol=1e-13)
  for k in ("W", "b"):
    np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-14)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ("softmax", "svm"))
def test_blocked_sums_with_implicit_centring(x64, loss):
  """data_term_sums over blocks with shift μ equals the dense objective on
  the explicitly centred rows (value and gradient).
  """
  x = random_rows(seed=5)
  y = np.random.default_rng(6).integers(0, 3, size=60)
  params = params_for(30, 3, seed=7)
  mu = sparse.column_mean(x)
  centred = x.toarray() - mu

  def dense(p):
    return 60 * objective(p, centred, y, loss=loss, reg_strength=0.0)

  @jax.jit
  def blocked_and_dense(p, rows, labels, shift):
    blocked = sparse.data_term_sums(
      p, rows, labels, loss=loss, shift=shift, block_rows=16
    )
    return blocked, jax.value_and_grad(dense)(p)

  (total, grads), (want_total, want) = blocked_and_dense(
    params, sparse.to_device(x, np.float64), jnp.asarray(y), jnp.asarray(mu)
  )
  np.testing.assert_allclose(total, want_total, rtol=1e-12)
  for k in ("W", "b"):
    np.testing.assert_allclose(grads[k], want[k], rtol=1e-11, atol=1e-12)


@pytest.mark.slow
def test_training_epochs_equal_the_dense_path_and_compile_once(x64):
  x = random_rows(n=200, d=25, seed=8)
  y = np.random.default_rng(9).integers(0, 3, size=200)
  config = epoch_lib.TrainConfig(
    loss="svm", optimizer="momentum", batch_size=32, epochs=3
  )
  hp = epoch_lib.make_hparams(
    learning_rate=0.1, reg_strength=1e-3, dtype=jnp.float64
  )
  dense = epoch_lib.DeviceData(
    jnp.asarray(x[:160].toarray()),
    jnp.asarray(y[:160]),
    jnp.asarray(x[160:].toarray()),
    jnp.asarray(y[160:]),
  )
  rows = epoch_lib.DeviceData(
    sparse.to_device(x[:160], np.float64),
    jnp.asarray(y[:160]),
    sparse.to_device(x[160:], np.float64),
    jnp.asarray(y[160:]),
  )
  traces = []

  def counted(state, hparams, data):
    traces.append(1)
    return epoch_lib.train_epoch(state, hparams, data, config=config)

  step = jax.jit(counted)
  results = []
  for data in (dense, rows):
    state = epoch_lib.init_state(config, hp, 0, 25, 3, 160, jnp.float64)
    for _ in range(config.epochs):
      state, metrics = step(state, hp, data)
    results.append((state.params, metrics))
  assert len(traces) == 2  # once per layout, not per epoch
  (pd, md), (ps, ms) = results
  np.testing.assert_allclose(ps["W"], pd["W"], rtol=1e-11, atol=1e-13)
  for k in md:
    assert float(ms[k]) == pytest.approx(float(md[k]), rel=1e-11)


def test_full_batch_and_accuracy_in_blocks(x64):
  x = random_rows(n=50, seed=10)
  y = np.random.default_rng(11).integers(0, 4, size=50)
  params = params_for(30, 4, seed=12)
  rows = sparse.to_device(x, np.float64)
  w, b = np.asarray(params["W"]), np.asarray(params["b"])
  want = np.mean(np.argmax(x.toarray() @ w + b, 1) == y)
  for block in (7, 50, 4096):
    got = sparse.count_correct(params, rows, jnp.asarray(y), block_rows=block)
    assert int(got) == round(want * 50)
  assert float(epoch_lib.accuracy(params, rows, jnp.asarray(y))) == (
    pytest.approx(want, abs=1e-7)
  )
  # Host (numpy) parameters, as a sweep's best_params are, work the same.
  host = {"W": w, "b": b}
  assert int(sparse.count_correct(host, rows, jnp.asarray(y))) == round(
    want * 50
  )


def test_64_bit_row_pointers(x64, monkeypatch):
  """Above 2³¹ non-zeros the row pointers are int64 (under x64) and give the
  same scores; without x64 the rows are refused in one line.
  """
  x = random_rows(seed=13)
  params = params_for(30, 2)
  want = sparse.map_scores(params, sparse.to_device(x, np.float64))
  monkeypatch.setattr(sparse, "INT32_MAX", x.nnz - 1)
  wide = sparse.to_device(x, np.float64)
  assert wide.indptr.dtype == jnp.int64
  np.testing.assert_array_equal(sparse.map_scores(params, wide), want)
  jax.config.update("jax_enable_x64", False)
  with pytest.raises(LinearJaxError, match="64-bit row pointers"):
    sparse.to_device(x)


def test_index_dtype_and_densify_rule():
  assert sparse.index_dtype(47_236, 1_500_000) == np.int32
  assert sparse.index_dtype(3_231_961, 2**31) == np.int64
  gib = 1 << 30
  # Narrow and dense enough: 8 features at 30 % density.
  assert sparse.should_densify(1000, 8, 2400, gib)
  # rcv1 shape: dense would be 63x the CSR bytes.
  assert not sparse.should_densify(20_242, 47_236, 1_500_000, 64 * gib)
  # Dense enough but over the budget.
  assert not sparse.should_densify(10**6, 100, 5 * 10**7, gib // 4)


def test_duplicates_and_widths_are_refused():
  x = scipy.sparse.csr_matrix(
    (np.ones(4), np.array([0, 2, 2, 1]), np.array([0, 1, 3, 4])), shape=(3, 3)
  )
  assert sparse.first_duplicate(x) == (1, 2)
  with pytest.raises(LinearJaxError, match="column 2 of row 1 twice"):
    sparse.as_csr(x, "x")
  ok = sparse.as_csr(scipy.sparse.eye(3, format="csr"), "x")
  assert sparse.first_duplicate(ok) is None
  assert sparse.with_width(ok, 5, "x").shape == (3, 5)
  with pytest.raises(LinearJaxError, match="at most 2 features"):
    sparse.with_width(ok, 2, "x")


def test_row_norms_and_column_scaling_keep_the_structure():
  x = sparse.as_csr(random_rows(seed=14), "x")
  normed = sparse.normalize_rows(x)
  assert np.shares_memory(normed.indices, x.indices)  # new values only
  norms = np.linalg.norm(normed.toarray(), axis=1)
  np.testing.assert_allclose(norms[np.diff(x.indptr) > 0], 1.0, rtol=1e-6)
  assert norms[3] == 0.0
  scale = np.linspace(1.0, 3.0, 30)
  np.testing.assert_allclose(
    sparse.scale_columns(x, scale).toarray(), x.toarray() / scale, rtol=1e-6
  )
  np.testing.assert_allclose(
    sparse.column_std(x), x.toarray().std(0), rtol=1e-5, atol=1e-7
  )
