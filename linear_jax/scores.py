"""The score function s = f(x; W, b) = xW + b, and the bias trick.

Layout (used everywhere in linear_jax): ``x`` is ``[N, D]`` (one flattened
example per row), ``params = {"W": [D, C], "b": [C]}``, scores are ``[N, C]``.

The bias trick appends a constant 1 to every example and folds ``b`` into an
extra last row of ``W``, so that s = x' W' with x' = [x, 1] ``[N, D+1]`` and
W' = [[W], [b]] ``[D+1, C]``. ``add_bias_column`` / ``fold_bias`` go one way,
``drop_bias_column`` / ``unfold_bias`` the other; both forms give the same
scores (the folded form has no ``"b"``).

Sparse rows (``linear_jax.sparse``: a ``RowBlock`` minibatch or all of a
``CSRRows``) give the same scores through a gather of W's rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from linear_jax import sparse

Params = dict


def linear_scores(params: Params, x: ArrayLike) -> jax.Array:
  """Class scores s = xW + b.

  Args:
    params: ``{"W": [D, C], "b": [C]}``; ``"b"`` may be absent (bias-trick
      form, where ``x`` already carries its ones column).
    x: examples, ``[N, D]``: an array, or sparse rows
      (``linear_jax.sparse.RowBlock`` or ``CSRRows``).

  Returns:
    Scores, ``[N, C]``.
  """
  if isinstance(x, sparse.RowBlock):
    return sparse.scores(params, x)
  if isinstance(x, sparse.CSRRows):
    return sparse.map_scores(params, x)
  if transposed_gradient_layout():
    # Same values as x @ W. XLA:CPU computes autodiff's ∂L/∂W = xᵀdS as a
    # [D, C] product several times slower than the [C, D] product dSᵀx
    # (e.g. for a 256 × 3072 batch). Reading W through a transposed copy
    # behind an optimization barrier makes the gradient come out as dSᵀx,
    # then a cheap transpose of the small W-shaped result.
    w_t = jax.lax.optimization_barrier(jnp.asarray(params["W"]).T)
    scores = jnp.einsum("nd,cd->nc", x, w_t)
  else:  # GPUs: cuBLAS takes either layout; the copies would only cost.
    scores = jnp.dot(x, params["W"])
  if "b" in params:
    scores = scores + params["b"]
  return scores


def transposed_gradient_layout() -> bool:
  """Whether to compute ∂L/∂W as (dSᵀx)ᵀ: on the CPU backend, where it pays."""
  return jax.default_backend() == "cpu"


def add_bias_column(x: ArrayLike) -> jax.Array:
  """X ``[N, D]`` -> [x, 1] ``[N, D+1]`` (the bias trick's data side)."""
  x = jnp.asarray(x)
  return jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)


def drop_bias_column(x: ArrayLike) -> jax.Array:
  """[x, 1] ``[N, D+1]`` -> x ``[N, D]`` (inverse of ``add_bias_column``)."""
  return jnp.asarray(x)[:, :-1]


def fold_bias(params: Params) -> Params:
  """``{"W": [D, C], "b": [C]}`` -> ``{"W": [D+1, C]}`` with b as the last row."""
  return {"W": jnp.concatenate([params["W"], params["b"][None, :]], axis=0)}


def unfold_bias(params: Params) -> Params:
  """``{"W": [D+1, C]}`` -> ``{"W": [D, C], "b": [C]}`` (inverse of ``fold_bias``)."""
  w = params["W"]
  return {"W": w[:-1], "b": w[-1]}


def init_params(
  num_features: int,
  num_classes: int,
  *,
  key=None,
  scale: float = 0.0,
  dtype=jnp.float32,
) -> Params:
  """Zero (or small random, when ``key`` is given) parameters ``{"W", "b"}``."""
  if key is None or scale == 0.0:
    w = jnp.zeros((num_features, num_classes), dtype)
  else:
    w = scale * jax.random.normal(key, (num_features, num_classes), dtype)
  return {"W": w, "b": jnp.zeros((num_classes,), dtype)}


def top_class(scores: jax.Array) -> jax.Array:
  """The argmax over the last axis, as int32, with ``jnp.argmax``'s ties (the first
  maximum) and NaNs (the first NaN wins).

  It is the first index where s equals its maximum: two single-operand
  reductions that XLA's CPU backend vectorizes. ``jnp.argmax`` is one
  two-operand reduction, which that backend runs element by element: on a
  ``[2048, 1000]`` block, softmax's loss, gradient and curvature with
  ``jnp.argmax`` took 7.6 ms, with this 1.6 ms (BENCHMARKS.md, "The linear
  probe at C = 1,000 (CPU)").
  """
  num = scores.shape[-1]
  top = jnp.max(scores, axis=-1, keepdims=True)
  idx = jnp.arange(num, dtype=jnp.int32)
  nan = jnp.isnan(scores)
  first = jnp.where(jnp.any(nan, axis=-1, keepdims=True), nan, scores == top)
  return jnp.min(jnp.where(first, idx, num), axis=-1).astype(jnp.int32)


def predict(params: Params, x: ArrayLike) -> jax.Array:
  """Predicted labels argmax_j s_j, ``[N]`` int32 (``top_class``)."""
  return top_class(linear_scores(params, x))
