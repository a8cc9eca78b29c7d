"""The full loss L(W) = (1/N) Σ_i L_i(f(x_i; W, b), y_i) + λ R(W).

This is the one place where per-example losses are reduced and the penalty
is added. With weights, the data term is the weighted mean
Σ_i w_i L_i / Σ_i w_i, with w_i = sample_weight_i · class_weight[y_i] (0 when
every w_i is 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from linear_jax import checks, regularizers, sparse
from linear_jax import losses as losses_lib
from linear_jax.scores import linear_scores


def example_weights(
  labels: jax.Array, sample_weight=None, class_weight=None
) -> jax.Array | None:
  """w_i = sample_weight_i · class_weight[y_i] ``[N]``, or None if unweighted."""
  if sample_weight is None and class_weight is None:
    return None
  weights = jnp.ones(labels.shape, jnp.float32)
  if sample_weight is not None:
    sample_weight = jnp.asarray(sample_weight)
    if sample_weight.shape != labels.shape:
      raise checks.LinearJaxError(
        f"sample_weight shape {sample_weight.shape} must match labels "
        f"{labels.shape}; pass one weight per example"
      )
    checks.check_nonnegative(sample_weight, "sample_weight")
    weights = weights * sample_weight
  if class_weight is not None:
    class_weight = jnp.asarray(class_weight)
    if class_weight.ndim != 1:
      raise checks.LinearJaxError(
        f"class_weight must be [C], got shape {class_weight.shape}"
      )
    checks.check_nonnegative(class_weight, "class_weight")
    weights = weights * class_weight[labels]
  return weights


def reduce_mean(per_example: jax.Array, weights: jax.Array | None) -> jax.Array:
  """(1/N) Σ L_i, or Σ w_i L_i / Σ w_i (0 when every w_i is 0)."""
  if weights is None:
    return jnp.mean(per_example)
  total = jnp.sum(weights)
  # A minibatch may hold only zero-weight examples: no data term, not 0/0.
  # The guarded denominator keeps the gradient finite as well.
  return jnp.sum(weights * per_example) / jnp.where(total > 0, total, 1.0)


def objective_terms(
  params: dict,
  x: ArrayLike,
  y: ArrayLike,
  *,
  loss: str = "svm",
  reg: str = "l2",
  reg_strength: ArrayLike = 0.0,
  sample_weight=None,
  class_weight=None,
  l1_ratio: ArrayLike = 0.5,
  regularize_bias: bool = False,
  **loss_options,
) -> dict:
  """The two parts of the full loss, ``{"data_loss", "reg_loss"}``.

  ``reg_loss`` is λ R(W) (already multiplied by λ). Arguments as ``objective``.
  """
  if not isinstance(x, (sparse.RowBlock, sparse.CSRRows)):
    x = jnp.asarray(x)
  w = params["W"]
  if x.ndim != 2 or x.shape[1] != w.shape[0]:
    raise checks.LinearJaxError(
      f"x must be [N, D] with D = {w.shape[0]} rows of W, got shape "
      f"{x.shape}; flatten examples or use the bias trick consistently"
    )
  return terms_from_scores(
    params,
    linear_scores(params, x),
    y,
    loss=loss,
    reg=reg,
    reg_strength=reg_strength,
    sample_weight=sample_weight,
    class_weight=class_weight,
    l1_ratio=l1_ratio,
    regularize_bias=regularize_bias,
    **loss_options,
  )


def terms_from_scores(
  params: dict,
  scores: ArrayLike,
  y: ArrayLike,
  *,
  loss: str = "svm",
  reg: str = "l2",
  reg_strength: ArrayLike = 0.0,
  sample_weight=None,
  class_weight=None,
  l1_ratio: ArrayLike = 0.5,
  regularize_bias: bool = False,
  **loss_options,
) -> dict:
  """``objective_terms`` given the scores s = f(x; W, b) ``[N, C]`` already
  computed (the training step also uses them for its running accuracy).
  """
  loss_fn = losses_lib.get_loss(loss)
  losses_lib.check_loss_options(loss, loss_options)
  regularizers.get_regularizer(reg)
  checks.check_nonnegative(reg_strength, "reg_strength (λ)")
  y = jnp.asarray(y)
  per_example = loss_fn(scores, y, **loss_options)
  weights = example_weights(y, sample_weight, class_weight)
  return {
    "data_loss": reduce_mean(per_example, weights),
    "reg_loss": reg_strength
    * regularizers.penalty(
      params, reg, l1_ratio=l1_ratio, regularize_bias=regularize_bias
    ),
  }


def objective(
  params: dict,
  x: ArrayLike,
  y: ArrayLike,
  *,
  loss: str = "svm",
  reg: str = "l2",
  reg_strength: ArrayLike = 0.0,
  sample_weight=None,
  class_weight=None,
  l1_ratio: ArrayLike = 0.5,
  regularize_bias: bool = False,
  **loss_options,
) -> jax.Array:
  """The full loss L = (1/N) Σ L_i + λ R(W), a scalar ``jax.grad`` differentiates.

  Args:
    params: ``{"W": [D, C], "b": [C]}`` (or ``{"W": [D+1, C]}`` with the
      bias trick, then ``x`` carries a ones column).
    x: ``[N, D]`` examples.
    y: ``[N]`` integer labels in [0, C).
    loss: a name in ``linear_jax.LOSSES`` (static).
    reg: a name in ``linear_jax.REGULARIZERS`` (static).
    reg_strength: λ ≥ 0; may be an array (traced, swept by vmap).
    sample_weight: optional ``[N]`` non-negative weights.
    class_weight: optional ``[C]`` non-negative per-class weights.
    l1_ratio: ρ for ``reg="elastic_net"``.
    regularize_bias: also penalize ``b`` (default False).
    **loss_options: keyword options of the loss, e.g. ``margin`` (Δ) or
      ``label_smoothing`` (ε).

  Returns:
    Scalar L; a weighted mean Σ w_i L_i / Σ w_i + λR(W) with weights.
  """
  terms = objective_terms(
    params,
    x,
    y,
    loss=loss,
    reg=reg,
    reg_strength=reg_strength,
    sample_weight=sample_weight,
    class_weight=class_weight,
    l1_ratio=l1_ratio,
    regularize_bias=regularize_bias,
    **loss_options,
  )
  return terms["data_loss"] + terms["reg_loss"]
