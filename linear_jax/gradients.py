"""Closed-form gradients ∂L/∂W and ∂L/∂b, written without autodiff.

With dS = ∂L_i/∂s ``[N, C]`` (per example) and weights w_i (1/N unweighted,
w_i/Σw weighted), the chain rule through s = xW + b gives

  ∂L/∂W = xᵀ (w ⊙ dS) + λ ∂R/∂W,     ∂L/∂b = Σ_i w_i dS_i (+ λ ∂R/∂b).

Per-example score gradients (lecture's last slide), with m_j = s_j − s_y + Δ:

- svm:            dS_j = 1(m_j > 0) for j ≠ y;  dS_y = −Σ_{j≠y} 1(m_j > 0)
- squared_svm:    dS_j = 2 max(0, m_j);         dS_y = −Σ_{j≠y} 2 max(0, m_j)
- crammer_singer: dS_{j*} = 1, dS_y = −1 when m_{j*} > 0, j* = argmax_{j≠y} m_j
- softmax:        dS = p − t

At a kink (m = 0) the sub-gradient chosen is 0, as in ``linear_jax.losses``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from linear_jax import losses as losses_lib
from linear_jax import regularizers
from linear_jax.objective import example_weights
from linear_jax.scores import linear_scores, transposed_gradient_layout


def _put_label_column(dscores, labels, label_values):
  """Sets dS_{i, y_i} = label_values_i."""
  onehot = jax.nn.one_hot(labels, dscores.shape[-1], dtype=dscores.dtype)
  return dscores * (1 - onehot) + onehot * label_values[:, None]


def svm_score_gradient(scores, labels, *, margin=1.0):
  """∂L_i/∂s for the Weston–Watkins hinge, ``[N, C]``."""
  active = losses_lib.hinge_margins(scores, labels, margin=margin) > 0
  active = active.astype(scores.dtype)
  return _put_label_column(active, labels, -jnp.sum(active, axis=-1))


def squared_svm_score_gradient(scores, labels, *, margin=1.0):
  """∂L_i/∂s for the squared hinge, ``[N, C]``."""
  grad = 2.0 * losses_lib.hinge_margins(scores, labels, margin=margin)
  return _put_label_column(grad, labels, -jnp.sum(grad, axis=-1))


def crammer_singer_score_gradient(scores, labels, *, margin=1.0):
  """∂L_i/∂s for the Crammer–Singer hinge, ``[N, C]``."""
  num_classes = scores.shape[-1]
  is_label = jax.nn.one_hot(labels, num_classes, dtype=bool)
  worst_class = jnp.argmax(jnp.where(is_label, -jnp.inf, scores), axis=-1)
  active = losses_lib.crammer_singer_hinge(scores, labels, margin=margin) > 0
  active = active.astype(scores.dtype)[:, None]
  worst = jax.nn.one_hot(worst_class, num_classes, dtype=scores.dtype)
  return active * (worst - is_label.astype(scores.dtype))


def softmax_score_gradient(scores, labels, *, label_smoothing=0.0):
  """∂L_i/∂s = p − t for softmax cross-entropy, ``[N, C]``."""
  targets = losses_lib.smoothed_targets(
    labels, scores.shape[-1], label_smoothing, scores.dtype
  )
  return losses_lib.softmax_probabilities(scores) - targets


#: Loss name -> closed-form ∂L_i/∂s ``(scores, labels) -> [N, C]``.
SCORE_GRADIENTS: dict[str, Callable[..., jax.Array]] = {
  "svm": svm_score_gradient,
  "squared_svm": squared_svm_score_gradient,
  "crammer_singer": crammer_singer_score_gradient,
  "softmax": softmax_score_gradient,
}


def _penalty_gradient(w, reg, l1_ratio):
  """∂R/∂W for each regularizer (sign(0) = 0 for L1)."""
  if reg == "l2":
    return 2.0 * w
  if reg == "l1":
    return jnp.sign(w)
  if reg == "elastic_net":
    return l1_ratio * jnp.sign(w) + (1.0 - l1_ratio) * 2.0 * w
  return jnp.zeros_like(w)


def objective_gradient(
  params,
  x,
  y,
  *,
  loss="svm",
  reg="l2",
  reg_strength=0.0,
  sample_weight=None,
  class_weight=None,
  l1_ratio=0.5,
  regularize_bias=False,
  **loss_options,
):
  """Closed-form ∇ of ``linear_jax.objective`` (same arguments), as params' pytree."""
  losses_lib.get_loss(loss)
  regularizers.get_regularizer(reg)
  x = jnp.asarray(x)
  y = jnp.asarray(y)
  scores = linear_scores(params, x)
  dscores = SCORE_GRADIENTS[loss](scores, y, **loss_options)
  weights = example_weights(y, sample_weight, class_weight)
  if weights is None:
    dscores = dscores / x.shape[0]
  else:
    dscores = dscores * (weights / jnp.sum(weights))[:, None]
  if transposed_gradient_layout():  # see linear_jax.scores.linear_scores
    data_grad = jax.lax.optimization_barrier(dscores.T @ x).T
  else:
    data_grad = x.T @ dscores
  grads = {
    "W": data_grad
    + reg_strength * _penalty_gradient(params["W"], reg, l1_ratio)
  }
  if "b" in params:
    grads["b"] = jnp.sum(dscores, axis=0)
    if regularize_bias:
      grads["b"] = grads["b"] + reg_strength * _penalty_gradient(
        params["b"], reg, l1_ratio
      )
  return grads
