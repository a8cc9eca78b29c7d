"""linear_jax.row_blocks: every blocked pass against a plain reference."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import EPS32, slow_except

from linear_jax import LinearJaxError, row_blocks
from linear_jax.objective import objective

# (N, B): B divides N; the last block overlaps the one before; B > N.
BLOCKINGS = [(24, 8), (29, 8), (29, 64)]


@functools.partial(jax.jit, static_argnames="loss")
def objective_and_gradient(params, x, y, *, loss, **options):
  """The whole-batch objective and its ``jax.grad``, the blocked sums'
  reference.
  """
  return jax.value_and_grad(objective)(params, x, y, loss=loss, **options)


def data(n=29, d=6, c=4, seed=0, offset=3.0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)) + offset  # a large mean: centring matters
  y = rng.integers(0, c, n)
  w = rng.normal(size=(d, c))
  b = rng.normal(size=c)
  return x, y, w, b


@pytest.mark.parametrize("n,block", BLOCKINGS)
@pytest.mark.parametrize("num_valid", [None, 20])
def test_scan_counts_every_row_once(n, block, num_valid):
  x = jnp.arange(n, dtype=jnp.float32)[:, None]

  def fn(carry, xb, _, mask):
    return carry + jnp.zeros(n).at[xb[:, 0].astype(int)].add(mask)

  counts = row_blocks.scan_row_blocks(
    fn, jnp.zeros(n), x, None, block_rows=block, num_valid=num_valid
  )
  want = np.ones(n)
  if num_valid is not None:
    want[num_valid:] = 0
  np.testing.assert_array_equal(counts, want)


@pytest.mark.parametrize(
  "loss",
  slow_except(["softmax", "softmax_smoothed", "squared_svm", "svm"], "softmax"),
)
@pytest.mark.parametrize("n,block", slow_except(BLOCKINGS, (29, 8)))
def test_loss_gradient_sums_equal_the_plain_objective(x64, loss, n, block):
  # Float64: the blocked sums must equal the whole-batch reference and
  # jax.grad of it to rounding (1e-12), centring included. Softmax without
  # smoothing takes pass_sums' fused branch; with it, the losses module's.
  x, y, w, b = data(n=n)
  mu = x.mean(axis=0)
  options = {
    "softmax": {},
    "softmax_smoothed": {"label_smoothing": 0.1},
  }.get(loss, {"margin": 1.0})
  loss = loss.removesuffix("_smoothed")
  total, gw, gb = row_blocks.loss_gradient_sums(
    jnp.asarray(w),
    jnp.asarray(b),
    jnp.asarray(x),
    jnp.asarray(y),
    jnp.asarray(mu),
    loss=loss,
    block_rows=block,
    **options,
  )
  params = {"W": jnp.asarray(w), "b": jnp.asarray(b)}
  xc = jnp.asarray(x - mu)
  want, grad = objective_and_gradient(params, xc, y, loss=loss, **options)
  np.testing.assert_allclose(total / n, want, rtol=1e-12)
  np.testing.assert_allclose(gw / n, grad["W"], rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(gb / n, grad["b"], rtol=1e-12, atol=1e-14)


def test_confident_softmax_rows_keep_their_tiny_loss():
  # Float32, y the top score by 30: L = log1p(2e^-30) ≈ 1.87e-13, where
  # log(Σ e^{s − max}) rounds to 0. A row of scores (-30, 0, 0) takes the
  # other branch: L = 30 + log(2 + e^-30).
  x = jnp.asarray([[1.0], [-1.0]], jnp.float32)
  w = jnp.asarray([[30.0, 0.0, 0.0]], jnp.float32)
  b = jnp.zeros(3, jnp.float32)
  y = jnp.asarray([0, 0])
  sums = row_blocks.pass_sums(
    w, b, x, y, jnp.zeros(1, jnp.float32), loss="softmax", block_rows=8
  )
  want_confident = np.log1p(2 * np.exp(-30.0))
  want = want_confident + 30 + np.log(2 + np.exp(-30.0))
  np.testing.assert_allclose(sums.loss, want, rtol=4 * EPS32)
  one = row_blocks.pass_sums(
    w, b, x[:1], y[:1], jnp.zeros(1, jnp.float32), loss="softmax", block_rows=8
  )
  np.testing.assert_allclose(one.loss, want_confident, rtol=4 * EPS32)


def test_padding_rows_do_not_count(x64):
  x, y, w, b = data(n=24)
  mu = x[:17].mean(axis=0)
  args = [jnp.asarray(a) for a in (w, b)]
  padded = row_blocks.loss_gradient_sums(
    *args,
    jnp.asarray(x),
    jnp.asarray(y),
    jnp.asarray(mu),
    loss="softmax",
    block_rows=8,
    num_valid=17,
  )
  cut = row_blocks.loss_gradient_sums(
    *args,
    jnp.asarray(x[:17]),
    jnp.asarray(y[:17]),
    jnp.asarray(mu),
    loss="softmax",
    block_rows=8,
  )
  for a, c in zip(padded, cut, strict=True):
    np.testing.assert_allclose(a, c, rtol=1e-12)


@pytest.mark.parametrize("n,block", BLOCKINGS)
def test_gram_passes(x64, n, block):
  x, _, w, _ = data(n=n)
  total, count = row_blocks.column_sums(jnp.asarray(x), block_rows=block)
  np.testing.assert_allclose(total, x.sum(axis=0), rtol=1e-12)
  assert count == n
  mu = x.mean(axis=0)
  xc = x - mu
  g = row_blocks.centred_gram(jnp.asarray(x), jnp.asarray(mu), block_rows=block)
  np.testing.assert_allclose(g, xc.T @ xc, rtol=1e-12)
  gq, sq = row_blocks.centred_gram_product(
    jnp.asarray(x), jnp.asarray(mu), jnp.asarray(w), block_rows=block
  )
  np.testing.assert_allclose(gq, xc.T @ (xc @ w), rtol=1e-11)
  np.testing.assert_allclose(sq, np.sum(xc * xc), rtol=1e-12)


@pytest.mark.parametrize("n,block", BLOCKINGS)
def test_correct_counts_of_several_models(n, block):
  x, y, _, _ = data(n=n)
  rng = np.random.default_rng(1)
  w = rng.normal(size=(3, x.shape[1], 4)).astype(np.float32)
  b = rng.normal(size=(3, 4)).astype(np.float32)
  got = row_blocks.correct_counts(
    jnp.asarray(w),
    jnp.asarray(b),
    jnp.asarray(x, jnp.float32),
    jnp.asarray(y),
    block_rows=block,
  )
  want = [
    np.sum(np.argmax(x.astype(np.float32) @ w[k] + b[k], 1) == y)
    for k in range(3)
  ]
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n,block", BLOCKINGS)
def test_pass_sums_curvature_and_accuracy(x64, n, block):
  x, y, w, b = data(n=n)
  mu = x.mean(axis=0)
  xc = x - mu
  args = (jnp.asarray(x), jnp.asarray(y), jnp.asarray(mu))
  sums = row_blocks.pass_sums(
    jnp.asarray(w), jnp.asarray(b), *args, loss="softmax", block_rows=block
  )
  s = xc @ w + b
  p = np.exp(s - s.max(1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  sq = np.sum(xc * xc, axis=1)
  spread = 1 - np.sum(p * p, 1)
  np.testing.assert_allclose(sums.spread_weighted, np.sum(sq * spread))
  np.testing.assert_allclose(sums.weight, np.sum(sq))
  np.testing.assert_allclose(sums.spread, np.sum(spread))
  assert sums.correct == np.sum(np.argmax(s, 1) == y)
  # At W = 0 every p is uniform: ρ = (1 − 1/C) / (C − 1) = 1/C exactly.
  flat = row_blocks.pass_sums(
    jnp.zeros_like(w), jnp.zeros_like(b), *args, loss="softmax", block_rows=8
  )
  np.testing.assert_allclose(
    flat.spread_weighted / flat.weight / 3, 1 / 4, rtol=1e-14
  )
  np.testing.assert_allclose(flat.spread / n / 3, 1 / 4, rtol=1e-14)


@pytest.mark.slow
def test_float16_storage_sums_in_float32():
  # Float16 rows read with float32 sums equal float32 rows holding the same
  # (float16-rounded) values, to float32 rounding of N-row sums; against the
  # unrounded float32 rows they differ by the rounding of X itself, which the
  # first-order bound |ΔL| ≤ u16 · Σ_i Σ_j |x_ij| |(W dS_iᵀ)_j| / N covers
  # (u16 = 2⁻¹¹, float16's unit roundoff).
  rng = np.random.default_rng(3)
  n, d, c = 300, 20, 7
  x = np.abs(rng.normal(size=(n, d))).astype(np.float32) * 3
  y = rng.integers(0, c, n)
  w = rng.normal(size=(d, c)).astype(np.float32) * 0.3
  b = np.zeros(c, np.float32)
  x16 = x.astype(np.float16)
  mu16 = jnp.asarray(x16.astype(np.float64).mean(0), jnp.float32)

  def run(rows, mu):
    return row_blocks.loss_gradient_sums(
      jnp.asarray(w),
      jnp.asarray(b),
      rows,
      jnp.asarray(y),
      mu,
      loss="softmax",
      block_rows=64,
    )

  got = run(jnp.asarray(x16), mu16)
  assert got[1].dtype == jnp.float32
  same = run(jnp.asarray(x16.astype(np.float32)), mu16)
  rtol = 10 * EPS32 * np.sqrt(n)  # conftest's f32 rule, N-term sums
  for a, e in zip(got, same, strict=True):
    np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * np.abs(e).max())
  mu = jnp.asarray(x.mean(0))
  full = run(jnp.asarray(x), mu)
  xc = x - np.asarray(mu)
  s = xc @ w
  p = np.exp(s - s.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  ds = p - np.eye(c)[y]
  u16 = 2.0**-11
  bound = u16 * np.sum(np.abs(x) * np.abs(ds @ w.T)) * 2  # x and μ rounded
  diff = abs(float(got[0]) - float(full[0]))
  assert diff <= bound + rtol * abs(float(full[0]))
  assert diff > 0  # the rounding of X is visible: the check can fail


def test_block_rows_fit_the_budget():
  b = row_blocks.block_rows(10**6, 2048, 1000, budget_bytes=256 << 20)
  per_row = 4 * (2048 + row_blocks.SCORE_TEMPORARIES * 1000)
  assert b * per_row <= 256 << 20 < (b + 1) * per_row
  assert row_blocks.block_rows(100, 2048, 1000) == 100
  assert (
    row_blocks.block_rows(10**6, 2048, 1000, num_models=8) < b / 4
  )  # 8 score rows per row


def test_check_fits_refuses_in_one_line():
  row_blocks.check_fits(1 << 20, "a path", budget_bytes=2 << 20)
  with pytest.raises(
    LinearJaxError, match=r"3\.00 GiB, over the 2\.00 GiB"
  ) as e:
    row_blocks.check_fits(3 << 30, "the λ path", budget_bytes=2 << 30)
  assert "\n" not in str(e.value)
