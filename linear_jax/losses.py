"""Per-example classification losses L_i(s, y): pure, never reducing.

Every loss here maps ``scores [N, C]`` (s = xW + b) and integer ``labels [N]``
in [0, C) to per-example losses ``[N]``. Options are keyword-only and may be
arrays (so ``vmap`` can sweep them). Reduction, weighting and regularization
happen in one place: ``linear_jax.objective``.

``LOSSES`` maps a name to its function:

- ``"svm"``: Weston–Watkins multiclass hinge, Σ_{j≠y} max(0, s_j − s_y + Δ)
- ``"squared_svm"``: Σ_{j≠y} max(0, s_j − s_y + Δ)²
- ``"crammer_singer"``: max(0, max_{j≠y} (s_j − s_y + Δ))
- ``"softmax"``: cross-entropy −Σ_j t_j log p_j, p = softmax(s)
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from linear_jax import checks


def _label_scores(scores: jax.Array, labels: jax.Array) -> jax.Array:
  """s_y as ``[N, 1]``."""
  return jnp.take_along_axis(scores, labels[:, None], axis=-1)


def _not_label_mask(scores: jax.Array, labels: jax.Array) -> jax.Array:
  """``[N, C]`` boolean, True where j ≠ y_i."""
  return labels[:, None] != jnp.arange(scores.shape[-1])


def hinge_margins(
  scores: ArrayLike, labels: ArrayLike, *, margin: ArrayLike = 1.0
) -> jax.Array:
  """max(0, s_j − s_y + Δ) for j ≠ y and 0 at j = y, ``[N, C]``.

  ``where(m > 0, m, 0)`` rather than ``maximum`` so that the sub-gradient at a
  kink is 0, matching the closed form's indicator 1(m > 0).
  """
  scores, labels = checks.check_scores_and_labels(scores, labels)
  checks.check_nonnegative(margin, "margin (Δ)")
  m = scores - _label_scores(scores, labels) + margin
  return jnp.where(_not_label_mask(scores, labels) & (m > 0), m, 0.0)


def multiclass_hinge(
  scores: ArrayLike, labels: ArrayLike, *, margin: ArrayLike = 1.0
) -> jax.Array:
  """Weston–Watkins multiclass SVM loss (the lecture's hinge loss).

  L_i = Σ_{j≠y_i} max(0, s_j − s_{y_i} + Δ)

  Args:
    scores: ``[N, C]`` class scores.
    labels: ``[N]`` integer labels in [0, C).
    margin: Δ ≥ 0 (scalar), default 1.

  Returns:
    ``[N]`` per-example losses.

  Reference: Weston & Watkins, "Support vector machines for multi-class
  pattern recognition", ESANN 1999.
  """
  return jnp.sum(hinge_margins(scores, labels, margin=margin), axis=-1)


def squared_multiclass_hinge(
  scores: ArrayLike, labels: ArrayLike, *, margin: ArrayLike = 1.0
) -> jax.Array:
  """Squared multiclass hinge (the lecture's Q6), L_i = Σ_{j≠y} max(0, s_j − s_y + Δ)².

  Args/Returns as ``multiclass_hinge``.
  """
  return jnp.sum(hinge_margins(scores, labels, margin=margin) ** 2, axis=-1)


def crammer_singer_hinge(
  scores: ArrayLike, labels: ArrayLike, *, margin: ArrayLike = 1.0
) -> jax.Array:
  """Crammer–Singer multiclass hinge: only the worst wrong class counts.

  L_i = max(0, max_{j≠y_i} (s_j − s_{y_i} + Δ))

  Equals ``optax.losses.multiclass_hinge_loss`` at Δ = 1. Args/Returns as
  ``multiclass_hinge``.

  Reference: Crammer & Singer, "On the algorithmic implementation of
  multiclass kernel-based vector machines", JMLR 2001.
  """
  scores, labels = checks.check_scores_and_labels(scores, labels)
  checks.check_nonnegative(margin, "margin (Δ)")
  wrong = jnp.where(_not_label_mask(scores, labels), scores, -jnp.inf)
  worst = jnp.max(wrong, axis=-1) - _label_scores(scores, labels)[:, 0] + margin
  return jnp.where(worst > 0, worst, 0.0)


def softmax_probabilities(scores: ArrayLike) -> jax.Array:
  """p_j = e^{s_j} / Σ_k e^{s_k}, ``[N, C]`` (stable for huge and −inf scores)."""
  return jax.nn.softmax(jnp.asarray(scores), axis=-1)


def smoothed_targets(
  labels: jax.Array, num_classes: int, label_smoothing: ArrayLike, dtype
) -> jax.Array:
  """T = (1 − ε)·onehot(y) + ε/C, ``[N, C]``."""
  onehot = jax.nn.one_hot(labels, num_classes, dtype=dtype)
  eps = jnp.asarray(label_smoothing)
  return (1.0 - eps) * onehot + eps / num_classes


def label_negative_log_likelihood(
  scores: jax.Array, labels: jax.Array
) -> jax.Array:
  """−log p_y = logsumexp(s) − s_y, ``[N]``, accurate to the last digit.

  When s_y is the largest score, logsumexp(s) − s_y cancels catastrophically
  (10 + 3e-48 − 10 = 0 in float64), so there we use the identity
  −log p_y = log1p(Σ_{j≠y} e^{s_j − s_y}), whose terms are all ≤ 1.
  Elsewhere logsumexp(s) − s_y ≥ log 2 has no cancellation.
  """
  label_score = _label_scores(scores, labels)
  others = jnp.where(_not_label_mask(scores, labels), scores, -jnp.inf)
  # Clip at 0 so the unselected branch stays finite (no NaN gradient); where()
  # rather than minimum() so a tie (gap = 0) passes its full gradient.
  gaps = others - label_score
  gaps = jnp.where(gaps > 0, 0.0, gaps)
  near_zero = jnp.log1p(jnp.sum(jnp.exp(gaps), axis=-1))
  general = jax.nn.logsumexp(scores, axis=-1) - label_score[:, 0]
  is_max = label_score[:, 0] >= jnp.max(others, axis=-1)
  return jnp.where(is_max, near_zero, general)


def softmax_cross_entropy(
  scores: ArrayLike, labels: ArrayLike, *, label_smoothing: ArrayLike = 0.0
) -> jax.Array:
  """Softmax (multinomial logistic) cross-entropy, natural log.

  L_i = −Σ_j t_j log p_j with t = (1 − ε)·onehot(y_i) + ε/C, i.e.
  L_i = (1 − ε)(−log p_{y_i}) + (ε/C) Σ_j (−log p_j); at ε = 0, −log p_{y_i}.

  Finite for scores like ±1e4 (logsumexp subtracts the max:
  log Σ e^{s_j} = m + log Σ e^{s_j − m}); entries of −inf have p_j = 0 and
  gradient p_j − t_j = 0 when ε = 0 (with ε > 0 their target is ε/C and the
  loss is +inf, as it should be). A confident correct prediction keeps its
  tiny loss (e.g. 3e-48 for s = [10, −100, −100]) instead of rounding to 0.

  Args:
    scores: ``[N, C]`` class scores.
    labels: ``[N]`` integer labels in [0, C).
    label_smoothing: ε in [0, 1], default 0.

  Returns:
    ``[N]`` per-example losses (nats).
  """
  scores, labels = checks.check_scores_and_labels(scores, labels)
  checks.check_unit_interval(label_smoothing, "label_smoothing")
  nll = label_negative_log_likelihood(scores, labels)
  if isinstance(label_smoothing, (int, float)) and label_smoothing == 0:
    return nll
  mean_nll = jax.nn.logsumexp(scores, axis=-1) - jnp.mean(scores, axis=-1)
  eps = jnp.asarray(label_smoothing)
  # where(): ε·inf at ε = 0 would be NaN.
  smooth = jnp.where(eps > 0, eps * mean_nll, 0.0)
  return (1.0 - eps) * nll + smooth


#: Loss name -> per-example loss ``(scores [N, C], labels [N]) -> [N]``.
LOSSES: dict[str, Callable[..., jax.Array]] = {
  "svm": multiclass_hinge,
  "squared_svm": squared_multiclass_hinge,
  "crammer_singer": crammer_singer_hinge,
  "softmax": softmax_cross_entropy,
}

#: The keyword options each loss accepts.
LOSS_OPTIONS = {
  "svm": ("margin",),
  "squared_svm": ("margin",),
  "crammer_singer": ("margin",),
  "softmax": ("label_smoothing",),
}


def get_loss(name: str):
  """``LOSSES[name]``, or a one-line error listing the valid names."""
  return checks.lookup(LOSSES, name, "loss")


def loss_options(name: str, **values) -> dict:
  """The entries of ``values`` that loss ``name`` takes (``LOSS_OPTIONS``),
  e.g. ``loss_options("svm", margin=Δ, label_smoothing=ε) == {"margin": Δ}``.
  """
  return {k: v for k, v in values.items() if k in LOSS_OPTIONS[name]}


def check_loss_options(name: str, options: dict) -> None:
  """Rejects options the named loss does not take, e.g. ``margin`` for softmax."""
  allowed = LOSS_OPTIONS[name]
  for key in options:
    if key not in allowed:
      raise checks.LinearJaxError(
        f"loss {name!r} takes no option {key!r}; it accepts: "
        f"{', '.join(allowed)}"
      )
