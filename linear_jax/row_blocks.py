"""Passes over the rows of X in blocks: no ``[N, C]`` array, no copy of X.

Every pass a linear probe makes over its training rows (the column mean μ,
products with the centred Gram matrix, the objective and its gradient, the
accuracy of K models) is a sum over rows. Here each one is a ``lax.scan``
over blocks of B rows of X ``[N, D]``: a block is read, cast to the compute
dtype (X may be stored as float16 or bfloat16; sums are float32, or float64
under ``jax_enable_x64`` with float64 rows) and centred as it is read,
x − μ, so the centred rows never exist as a whole: the only temporaries are
a ``[B, D]`` block and a few ``[B, C]`` score blocks. Centring the block
rather than using (x − μ)W = xW − 1μᵀW costs one pass over the block and
avoids the cancellation of xW − μW when the features' mean is large.

Block i covers rows [i·B, (i+1)·B); the last block starts at N − B instead,
so every block has the same static shape and X is never padded, and the rows
the previous block already counted are masked. Rows at or after
``num_valid`` (the padding of a data-parallel shard) are masked too.

Every function returns *sums* over its rows, not means, so that a
data-parallel caller adds them across processes (``axis_name``: a
``lax.psum`` inside ``shard_map``) before dividing by the global N.

Memory: ``block_rows`` sizes B from a byte budget, and ``memory_budget`` /
``check_fits`` refuse work that cannot fit, in one line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from linear_jax import budget as budget_lib
from linear_jax import gradients as gradients_lib
from linear_jax import losses as losses_lib
from linear_jax.checks import LinearJaxError
from linear_jax.scores import top_class

# Working memory of one pass on a CPU (the blocks; X is counted apart): about
# a last-level cache. At N = 20,000, D = 512, C = 1,000 a pass over blocks of
# 1,024 rows ran 1.5-2.5x faster than over blocks of 10,000 rows, whose
# [B, C] score blocks leave the cache.
CPU_BLOCK_BUDGET_BYTES = 32 << 20
# Fraction of an accelerator's memory (``bytes_limit``) the probe plans for.
DEVICE_FRACTION = 0.8
# Score-sized float32 temporaries per row and model in a pass: the scores,
# exp(s − max) or the hinge margins, ∂L/∂s, and one fused temporary.
SCORE_TEMPORARIES = 4
# Smallest block worth a scan step.
MIN_BLOCK_ROWS = 8


def compute_dtype(dtype) -> jnp.dtype:
  """The dtype sums are taken in: float32, or float64 for float64 rows."""
  return jnp.promote_types(jnp.dtype(dtype), jnp.float32)


def scan_row_blocks(
  fn: Callable,
  init,
  x: jax.Array,
  y: jax.Array | None,
  *,
  block_rows: int,
  num_valid: ArrayLike | None = None,
):
  """``carry = fn(carry, x_block, y_block, mask)`` over the row blocks of x.

  Args:
    fn: ``(carry, [B, D] rows as stored, [B] labels or None, [B] bool
      mask) -> carry``; masked rows must not contribute.
    init: the initial carry.
    x: ``[N, D]`` rows.
    y: ``[N]`` labels or None.
    block_rows: B (capped at N).
    num_valid: rows ≥ this index are padding (default N); may be traced.

  Returns:
    The final carry.
  """
  n = x.shape[0]
  b = max(1, min(int(block_rows), n))
  num_blocks = -(-n // b)
  if num_valid is None:
    num_valid = n

  def step(carry, i):
    start = jnp.minimum(i * b, n - b)  # the last block ends at row N
    rows = start + jnp.arange(b)
    mask = (rows >= i * b) & (rows < num_valid)
    xb = jax.lax.dynamic_slice_in_dim(x, start, b)
    yb = None if y is None else jax.lax.dynamic_slice_in_dim(y, start, b)
    return fn(carry, xb, yb, mask), None

  carry, _ = jax.lax.scan(step, init, jnp.arange(num_blocks))
  return carry


def _psum(tree, axis_name):
  """Σ of every leaf across ``axis_name``, as one all-reduce of one vector.

  One collective per pass: a tuple of separate all-reduces can be issued in
  different orders by different processes over gloo (a mismatch that aborts).
  """
  if axis_name is None:
    return tree
  flat, unravel = jax.flatten_util.ravel_pytree(tree)
  return unravel(jax.lax.psum(flat, axis_name))


def _centred(xb, mu, mask):
  """A block cast to μ's dtype, centred, masked rows set to 0."""
  return jnp.where(mask[:, None], xb.astype(mu.dtype) - mu, 0)


def column_sums(
  x: jax.Array,
  *,
  block_rows: int,
  num_valid: ArrayLike | None = None,
  axis_name: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """``(Σ_i x_i [D], number of rows)``, in the compute dtype."""
  dtype = compute_dtype(x.dtype)

  def fn(carry, xb, _, mask):
    total, count = carry
    xb = jnp.where(mask[:, None], xb.astype(dtype), 0)
    return total + jnp.sum(xb, axis=0), count + jnp.sum(mask, dtype=dtype)

  init = (jnp.zeros(x.shape[1], dtype), jnp.zeros((), dtype))
  out = scan_row_blocks(
    fn, init, x, None, block_rows=block_rows, num_valid=num_valid
  )
  return _psum(out, axis_name)


def centred_gram(
  x: jax.Array,
  mu: jax.Array,
  *,
  block_rows: int,
  num_valid: ArrayLike | None = None,
  axis_name: str | None = None,
) -> jax.Array:
  """Σ_i (x_i − μ)ᵀ(x_i − μ) ``[D, D]`` (N·G for the covariance G)."""
  d = x.shape[1]

  def fn(acc, xb, _, mask):
    xc = _centred(xb, mu, mask)
    return acc + xc.T @ xc

  out = scan_row_blocks(
    fn,
    jnp.zeros((d, d), mu.dtype),
    x,
    None,
    block_rows=block_rows,
    num_valid=num_valid,
  )
  return _psum(out, axis_name)


def centred_gram_product(
  x: jax.Array,
  mu: jax.Array,
  q: jax.Array,
  *,
  block_rows: int,
  num_valid: ArrayLike | None = None,
  axis_name: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """``(Σ_i (x_i − μ)ᵀ((x_i − μ) q) [D, r], Σ_i ‖x_i − μ‖²)`` for q ``[D, r]``."""

  def fn(carry, xb, _, mask):
    acc, sq = carry
    xc = _centred(xb, mu, mask)
    return acc + xc.T @ (xc @ q), sq + jnp.sum(xc * xc)

  init = (jnp.zeros(q.shape, mu.dtype), jnp.zeros((), mu.dtype))
  out = scan_row_blocks(
    fn, init, x, None, block_rows=block_rows, num_valid=num_valid
  )
  return _psum(out, axis_name)


class PassSums(NamedTuple):
  """Sums over the rows of one pass at (W, b) (``pass_sums``).

  Attributes:
    loss: Σ_i L_i(s_i, y_i).
    grad_w: Σ_i (x_i − μ)ᵀ dS_i ``[D, C]``.
    grad_b: Σ_i dS_i ``[C]``.
    correct: rows with argmax s_i = y_i.
    spread_weighted: Σ_i ‖x_i − μ‖² (1 − ‖p_i‖²) (softmax; else 0).
    weight: Σ_i ‖x_i − μ‖².
    spread: Σ_i (1 − ‖p_i‖²) (softmax; else 0).
  """

  loss: jax.Array
  grad_w: jax.Array
  grad_b: jax.Array
  correct: jax.Array
  spread_weighted: jax.Array
  weight: jax.Array
  spread: jax.Array


def pass_sums(
  w: jax.Array,
  b: jax.Array,
  x: jax.Array,
  y: jax.Array,
  mu: jax.Array,
  *,
  loss: str,
  block_rows: int,
  num_valid: ArrayLike | None = None,
  axis_name: str | None = None,
  **loss_options,
) -> PassSums:
  """Objective, gradient, accuracy and curvature sums of one pass at (W, b).

  With s_i = (x_i − μ)W + b, dS_i = ∂L_i/∂s_i (``SCORE_GRADIENTS``) and, for
  softmax, p_i = softmax(s_i): everything ``PassSums`` lists, in one pass of
  4·N·D·C FLOPs. Divide ``loss``, ``grad_w`` and ``grad_b`` by N for the
  mean loss and its gradient with respect to W and b.

  The curvature sums measure softmax's data Hessian, (1/N) Σ_i x_c,i x_c,iᵀ
  ⊗ (diag(p_i) − p_i p_iᵀ): matching its trace with ρ·G ⊗ I over the C − 1
  directions that change the probabilities gives
  ρ = ``spread_weighted`` / ((C − 1)·``weight``), and the bias's own match
  ``spread`` / ((C − 1)·N). At W = 0 (p uniform) both are 1/C; they fall as
  predictions grow confident.

  Args:
    w: ``[D, C]`` weights (of the centred rows).
    b: ``[C]`` bias.
    x: ``[N, D]`` rows as stored.
    y: ``[N]`` int labels.
    mu: ``[D]`` the column mean, in the compute dtype.
    loss: a name in ``linear_jax.LOSSES``.
    block_rows: rows per block (``scan_row_blocks``).
    num_valid: rows at or after this index are padding.
    axis_name: sum across this mapped axis too (data parallel).
    **loss_options: the loss's options (``losses.loss_options``).

  Returns:
    ``PassSums``.
  """
  loss_fn = losses_lib.get_loss(loss)
  score_grad = gradients_lib.SCORE_GRADIENTS[loss]
  smoothing = loss_options.get("label_smoothing", 0.0)
  # A static zero (a traced ε takes the general branch).
  fused_softmax = (
    loss == "softmax" and isinstance(smoothing, (int, float)) and smoothing == 0
  )
  zero = jnp.zeros((), mu.dtype)

  def fn(carry, xb, yb, mask):
    xc = _centred(xb, mu, mask)
    s = xc @ w + b
    sq = jnp.sum(xc * xc, axis=-1)
    if fused_softmax:
      # One exp of the block serves the loss, its gradient p − onehot and
      # the curvature; the losses module's separate functions take three.
      # Where y holds the maximum, L_i = log1p(Σ_{j≠y} e^{s_j − s_y}): exact
      # for confident rows, where log z rounds to 0 (as the losses module).
      top = jnp.max(s, axis=-1, keepdims=True)
      e = jnp.exp(s - top)
      z = jnp.sum(e, axis=-1, keepdims=True)
      p = e / z
      s_y = jnp.take_along_axis(s, yb[:, None], axis=-1)
      onehot = yb[:, None] == jnp.arange(s.shape[-1])
      others = jnp.sum(jnp.where(onehot, 0, e), axis=-1, keepdims=True)
      per_example = jnp.where(
        s_y >= top, jnp.log1p(others), jnp.log(z) + top - s_y
      )[:, 0]
      ds = jnp.where(mask[:, None], p - onehot, 0)
    else:
      per_example = loss_fn(s, yb, **loss_options)
      ds = jnp.where(mask[:, None], score_grad(s, yb, **loss_options), 0)
    if loss == "softmax":
      if not fused_softmax:
        p = losses_lib.softmax_probabilities(s)
      spread = jnp.where(mask, 1 - jnp.sum(p * p, axis=-1), 0)
    else:
      spread = jnp.zeros_like(sq)
    hit = (top_class(s) == yb) & mask
    return PassSums(
      loss=carry.loss + jnp.sum(jnp.where(mask, per_example, 0)),
      grad_w=carry.grad_w + xc.T @ ds,
      grad_b=carry.grad_b + jnp.sum(ds, axis=0),
      correct=carry.correct + jnp.sum(hit, dtype=mu.dtype),
      spread_weighted=carry.spread_weighted + jnp.sum(sq * spread),
      weight=carry.weight + jnp.sum(sq),
      spread=carry.spread + jnp.sum(spread),
    )

  init = PassSums(zero, jnp.zeros_like(w), jnp.zeros_like(b), *[zero] * 4)
  out = scan_row_blocks(
    fn, init, x, y, block_rows=block_rows, num_valid=num_valid
  )
  return _psum(out, axis_name)


def loss_gradient_sums(
  w: jax.Array,
  b: jax.Array,
  x: jax.Array,
  y: jax.Array,
  mu: jax.Array,
  *,
  loss: str,
  block_rows: int,
  num_valid: ArrayLike | None = None,
  axis_name: str | None = None,
  **loss_options,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(Σ_i L_i, Σ_i (x_i − μ)ᵀ dS_i [D, C], Σ_i dS_i [C])`` of ``pass_sums``
  (same arguments): the data term and its gradient.
  """
  sums = pass_sums(
    w,
    b,
    x,
    y,
    mu,
    loss=loss,
    block_rows=block_rows,
    num_valid=num_valid,
    axis_name=axis_name,
    **loss_options,
  )
  return sums.loss, sums.grad_w, sums.grad_b


def correct_counts(
  w: jax.Array,
  b: jax.Array,
  x: jax.Array,
  y: jax.Array,
  *,
  block_rows: int,
  num_valid: ArrayLike | None = None,
  axis_name: str | None = None,
) -> jax.Array:
  """How many rows each of K models classifies correctly, ``[K]``.

  The scores of all K models for a block come from one ``[B, D] × [D, K·C]``
  product; argmax(xW_k + b_k) is compared with y (ties go to the first
  class, as ``jnp.argmax``).

  Args:
    w: ``[K, D, C]`` weights (of the uncentred rows).
    b: ``[K, C]`` biases.
    x: ``[N, D]`` rows as stored.
    y: ``[N]`` int labels.
    block_rows: rows per block.
    num_valid: rows at or after this index are padding.
    axis_name: sum across this mapped axis too.

  Returns:
    ``[K]`` counts (float, in the compute dtype).
  """
  k, d, c = w.shape
  wide = jnp.transpose(w, (1, 0, 2)).reshape(d, k * c)

  def fn(acc, xb, yb, mask):
    s = (xb.astype(w.dtype) @ wide).reshape(-1, k, c) + b
    hit = (top_class(s) == yb[:, None]) & mask[:, None]
    return acc + jnp.sum(hit, axis=0, dtype=w.dtype)

  out = scan_row_blocks(
    fn,
    jnp.zeros((k,), w.dtype),
    x,
    y,
    block_rows=block_rows,
    num_valid=num_valid,
  )
  return _psum(out, axis_name)


def block_rows(
  num_rows: int,
  num_features: int,
  num_classes: int,
  *,
  num_models: int = 1,
  budget_bytes: int = CPU_BLOCK_BUDGET_BYTES,
) -> int:
  """Rows per block B so that one pass's temporaries fit ``budget_bytes``.

  Per row: the float32 centred block row (4·D bytes) and
  ``SCORE_TEMPORARIES`` float32 score rows per model (4·4·K·C bytes).

  Args:
    num_rows: N (B is at most N).
    num_features: D.
    num_classes: C (for a Gram pass, the width r of its product).
    num_models: K models scored at once (λ values under ``vmap``).
    budget_bytes: the working memory of a pass.

  Returns:
    B, between ``MIN_BLOCK_ROWS`` (or N if smaller) and N.
  """
  per_row = 4 * (num_features + SCORE_TEMPORARIES * num_models * num_classes)
  rows = max(MIN_BLOCK_ROWS, int(budget_bytes) // per_row)
  return int(max(1, min(rows, num_rows)))


def memory_budget(device: jax.Device | None = None) -> int:
  """Bytes the probe may plan to use on ``device`` (default: the first).

  Accelerators: ``DEVICE_FRACTION`` of ``memory_stats()["bytes_limit"]``.
  CPU: the host memory budget (``linear_jax.budget``: ``--memory_budget``,
  ``$LINEAR_JAX_MEMORY_BUDGET``, else a share of the available memory).
  """
  device = device or jax.devices()[0]
  if device.platform != "cpu":
    try:
      stats = device.memory_stats() or {}
    except Exception:  # pylint: disable=broad-except  # some backends raise
      stats = {}
    if stats.get("bytes_limit"):
      return int(stats["bytes_limit"] * DEVICE_FRACTION)
  return budget_lib.memory_budget()


def check_fits(need_bytes: int, what: str, budget_bytes: int | None = None):
  """Raises a one-line ``LinearJaxError`` when ``need_bytes`` > the budget.

  Args:
    need_bytes: the estimate (``solver_bytes`` plus data where it is copied).
    what: names the work, e.g. "the λ path (N = 1281167, D = 2048, C = 1000)".
    budget_bytes: default ``memory_budget()``.
  """
  budget = memory_budget() if budget_bytes is None else int(budget_bytes)
  if need_bytes > budget:
    raise LinearJaxError(
      f"{what} needs about {need_bytes / 2**30:.2f} GiB, over the "
      f"{budget / 2**30:.2f} GiB memory budget; store the features as "
      "float16, use fewer rows or classes, or shard the rows over processes"
    )


def solver_bytes(
  num_features: int,
  num_classes: int,
  *,
  num_models: int = 1,
  num_results: int = 1,
  memory_size: int = 10,
  rank: int = 256,
  block_bytes: int = CPU_BLOCK_BUDGET_BYTES,
) -> int:
  """Bytes of the λ path's solver besides X: an estimate by shapes.

  Per model solved at once (``num_models``): the L-BFGS history (2·m
  vectors of (D + 1)·C), and about 12 more parameter-sized vectors (iterate,
  gradient, direction, trial point and its gradient, W, ∂L/∂W, scan carries
  in and out). Shared: the preconditioner's ``[D, r]`` basis and a ``[D, D]``
  Gram matrix, one pass's blocks. Results: ``num_results`` solutions.

  Returns:
    Bytes (float32).
  """
  params = 4 * (num_features + 1) * num_classes
  state = num_models * (2 * memory_size + 12) * params
  shared = 4 * num_features * (rank + num_features) + block_bytes
  return int(state + shared + num_results * params)


def feature_bytes(shape: tuple[int, ...], dtype) -> int:
  """Bytes of an array of ``shape`` and ``dtype``."""
  return int(math.prod(shape) * np.dtype(dtype).itemsize)
