"""Distributions with a known Bayes risk: sample any n, know P(y | x), know R*.

A ``Distribution`` draws labelled points ``x [n, D]`` (float32), ``y [n]``
(int32 in [0, K)) from a seeded numpy generator, reports the class
posteriors P(k | x) ``[n, K]``, and so the Bayes risk

    R* = E_x[1 − max_k P(k | x)],

the 0–1 risk of the Bayes classifier argmax_k P(k | x), in closed form where
one exists (``bayes_risk_closed_form``) and by Monte Carlo otherwise
(``bayes_risk``).

- ``gaussians``: K classes x | y=k ~ N(μ_k, Σ) with one shared Σ. The log
  posterior ratios are linear in x, so the Bayes classifier is linear (a
  linear model has no approximation error). For two classes with equal
  priors R* = Φ(−Δ/2), Δ² = (μ_1 − μ_0)ᵀ Σ⁻¹ (μ_1 − μ_0); with Σ = I and
  means ±μ that is Φ(−‖μ‖).
- ``noisy_gaussians``: ``gaussians`` with label noise: R* grows, the Bayes
  classifier stays the same linear one.
- The lecture's hard cases for a linear classifier (2-D, two classes, label
  1 the lecture's "class 1"; the embedded ``hard_*`` datasets are samples of
  these):
  ``parity``: uniform in [-1, 1]², class 1 when an odd number of coordinates
  is positive (XOR); the best linear classifier errs on 1/3 of the points.
  ``ring``: class 1 uniform on 1 ≤ ‖x‖₂ ≤ 2, class 0 uniform on the rest of
  [-3, 3]². ``modes``: class 1 from three Gaussian modes (σ = 0.3, centres
  1.5 from the origin, 120° apart), class 0 uniform in [-3, 3]² at least 1.0
  from every centre; the modes' tails overlap the background, so R* > 0 and
  has no closed form. For ``ring`` and ``modes`` a sample holds exactly
  ⌊n/2⌋ points of class 1 (stratified by the class priors ½, ½), shuffled.

Label noise η: each label is replaced, with probability η, by one of the
K − 1 other classes drawn uniformly, so
P̃(k | x) = (1 − η) P(k | x) + η (1 − P(k | x)) / (K − 1). For η < (K−1)/K
the argmax (the Bayes classifier) is unchanged and
R̃* = 1 − (1 − ηK/(K−1)) (1 − R*) − η/(K−1); for K = 2, R̃* = η + (1 − 2η) R*.

Synthetic sparse text (``sparse_text("rcv1")``, ``"news20"``, ``"url"``):
TF-IDF rows with the shapes and statistics of LIBSVM's text sets, drawn
from a Zipf vocabulary and class-dependent topic mixtures
(``linear_jax.data.sparse_text``; no closed-form posteriors).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from linear_jax import checks
from linear_jax.data.sparse_text import PRESETS as SPARSE_TEXT_PRESETS
from linear_jax.data.sparse_text import SparseText, sparse_text

__all__ = [
  "balanced",
  "BayesRisk",
  "BOX",
  "DISTRIBUTIONS",
  "Distribution",
  "gaussians",
  "get_distribution",
  "MODE_CENTRES",
  "MODE_CLEARANCE",
  "MODE_SIGMA",
  "modes",
  "noisy_gaussians",
  "normal_cdf",
  "parity",
  "rejection",
  "ring",
  "SPARSE_TEXT_PRESETS",
  "SparseText",
  "sparse_text",
  "uniform_square",
]

MODE_CENTRES = 1.5 * np.array(
  [[np.cos(a), np.sin(a)] for a in np.deg2rad([90.0, 210.0, 330.0])]
)
MODE_SIGMA = 0.3
MODE_CLEARANCE = 1.0
BOX = 3.0  # ring and modes live in [-BOX, BOX]²


def normal_cdf(z: float) -> float:
  """Φ(z) = ½ erfc(−z/√2)."""
  return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _rng(seed) -> np.random.Generator:
  """A generator from an int, a sequence of ints, or a generator."""
  if isinstance(seed, np.random.Generator):
    return seed
  return np.random.default_rng(seed)


def uniform_square(rng, n: int, half_width: float) -> np.ndarray:
  """``n`` points uniform in [-w, w]², ``[n, 2]`` float64."""
  return rng.uniform(-half_width, half_width, size=(n, 2))


def rejection(rng, n: int, half_width: float, keep) -> np.ndarray:
  """``n`` uniform points in [-w, w]² for which ``keep(points)`` holds."""
  out = np.empty((0, 2))
  while len(out) < n:
    points = uniform_square(rng, 4 * n, half_width)
    out = np.concatenate([out, points[keep(points)]])
  return out[:n]


def balanced(rng, n: int, sample_class_0, sample_class_1):
  """⌈n/2⌉ points from the first sampler, ⌊n/2⌋ from the second, shuffled;
  float32 ``x [n, 2]``, int32 labels 0 then 1.
  """
  x = np.concatenate([sample_class_0(n - n // 2), sample_class_1(n // 2)])
  y = np.repeat(np.array([0, 1], np.int32), [n - n // 2, n // 2])
  order = rng.permutation(n)
  return x[order].astype(np.float32), y[order]


@dataclasses.dataclass(frozen=True, eq=False)
class BayesRisk:
  """R* with its standard error (0 for a closed form) and how it was found."""

  value: float
  se: float
  method: str  # "closed form" or "monte carlo (n samples)"


@dataclasses.dataclass(frozen=True, eq=False)
class Distribution:
  """A labelled distribution over ``[D]``-vectors whose posteriors are known.

  Attributes:
    name: e.g. ``"gaussians"``.
    num_classes: K.
    dim: D.
    label_noise: η in [0, (K−1)/K).
    class_names: the K class names, in label order.
    clean_sample: ``(rng, n) -> (x float32 [n, D], y int32 [n])`` without
      label noise.
    clean_posteriors: ``x [n, D] -> P(k | x) [n, K]`` (float64) without
      label noise.
    clean_bayes_risk: R* without label noise in closed form, or None.
  """

  name: str
  num_classes: int
  dim: int
  label_noise: float
  class_names: tuple
  clean_sample: Callable
  clean_posteriors: Callable
  clean_bayes_risk: float | None

  def sample(self, n: int, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` labelled points: ``x`` float32 ``[n, D]``, ``y`` int32 ``[n]``.

    Args:
      n: the number of points, ≥ 0.
      seed: an int, a sequence of ints (``np.random.default_rng`` seeds) or a
        ``np.random.Generator``; the same seed gives the same points.
    """
    if n < 0:
      raise checks.LinearJaxError(f"sample size must be ≥ 0, got {n}")
    rng = _rng(seed)
    x, y = self.clean_sample(rng, n)
    if self.label_noise > 0:
      flip = rng.random(n) < self.label_noise
      other = (y + rng.integers(1, self.num_classes, size=n)) % self.num_classes
      y = np.where(flip, other, y).astype(np.int32)
    return x, y

  def posteriors(self, x) -> np.ndarray:
    """P(k | x) ``[n, K]`` (float64), label noise included; rows sum to 1."""
    p = self.clean_posteriors(np.asarray(x, np.float64))
    k, eta = self.num_classes, self.label_noise
    return (1.0 - eta) * p + eta * (1.0 - p) / (k - 1)

  def conditional_bayes_error(self, x) -> np.ndarray:
    """1 − max_k P(k | x) ``[n]``: the Bayes classifier's error rate at x."""
    return 1.0 - self.posteriors(x).max(axis=1)

  def bayes_predict(self, x) -> np.ndarray:
    """argmax_k P(k | x) ``[n]`` int32."""
    return self.posteriors(x).argmax(axis=1).astype(np.int32)

  @property
  def bayes_risk_closed_form(self) -> float | None:
    """R* in closed form (label noise included), or None if there is none."""
    if self.clean_bayes_risk is None:
      return None
    k, eta = self.num_classes, self.label_noise
    return (
      1.0
      - (1.0 - eta * k / (k - 1)) * (1.0 - self.clean_bayes_risk)
      - eta / (k - 1)
    )

  def bayes_risk_monte_carlo(self, n: int = 10**6, seed=0) -> BayesRisk:
    """R* ≈ (1/n) Σ_i (1 − max_k P(k | x_i)) over ``n`` fresh samples, with
    its standard error std/√n.
    """
    x, _ = self.sample(n, seed)
    err = self.conditional_bayes_error(x)
    return BayesRisk(
      float(err.mean()),
      float(err.std(ddof=1) / math.sqrt(n)),
      f"monte carlo ({n} samples)",
    )

  def bayes_risk(self, n: int = 10**6, seed=0) -> BayesRisk:
    """R*: the closed form where one exists, else ``bayes_risk_monte_carlo``."""
    closed = self.bayes_risk_closed_form
    if closed is not None:
      return BayesRisk(closed, 0.0, "closed form")
    return self.bayes_risk_monte_carlo(n, seed)


def _check_noise(label_noise: float, num_classes: int) -> float:
  limit = (num_classes - 1) / num_classes
  if not 0.0 <= label_noise < limit:
    raise checks.LinearJaxError(
      f"label_noise must lie in [0, {limit:g}) for {num_classes} classes "
      f"(above it the labels carry no information), got {label_noise}"
    )
  return float(label_noise)


def gaussians(
  num_classes: int = 2,
  dim: int = 2,
  *,
  separation: float = 1.0,
  means=None,
  covariance=None,
  priors=None,
  label_noise: float = 0.0,
) -> Distribution:
  """K Gaussian classes with one shared covariance: x | y=k ~ N(μ_k, Σ).

  P(k | x) = softmax_k(log π_k − ½ (x − μ_k)ᵀ Σ⁻¹ (x − μ_k)), linear in x up
  to the shared quadratic term, so the Bayes classifier is linear.

  Args:
    num_classes: K ≥ 2.
    dim: D ≥ 1 (≥ 2 when K > 2 and ``means`` is None).
    separation: ‖μ_k‖ of the default means: ±separation·e₁ for K = 2, else K
      points on the circle of that radius in the first two coordinates.
    means: ``[K, D]`` class means (overrides ``separation``).
    covariance: ``[D, D]`` shared Σ, positive definite; default I.
    priors: ``[K]`` class priors π; default uniform.
    label_noise: η (module docstring).

  Returns:
    The ``Distribution``; its closed-form R* is Φ(−Δ/2) for K = 2 with
    equal priors (Δ the Mahalanobis distance between the means), else None.
  """
  if num_classes < 2:
    raise checks.LinearJaxError(
      f"gaussians needs ≥ 2 classes, got {num_classes}"
    )
  if means is None:
    if num_classes == 2:
      means = np.zeros((2, dim))
      means[0, 0], means[1, 0] = -separation, separation
    else:
      if dim < 2:
        raise checks.LinearJaxError(
          f"{num_classes} default means need dim ≥ 2, got {dim}; pass means"
        )
      angles = 2 * np.pi * np.arange(num_classes) / num_classes
      means = np.zeros((num_classes, dim))
      means[:, 0], means[:, 1] = np.cos(angles), np.sin(angles)
      means *= separation
  means = np.asarray(means, np.float64)
  if means.shape != (num_classes, dim):
    raise checks.LinearJaxError(
      f"means must be [{num_classes}, {dim}], got shape {means.shape}"
    )
  cov = (
    np.eye(dim) if covariance is None else np.asarray(covariance, np.float64)
  )
  try:
    chol = np.linalg.cholesky(cov)
  except np.linalg.LinAlgError:
    raise checks.LinearJaxError(
      "covariance must be symmetric positive definite; pass e.g. np.eye(D)"
    ) from None
  precision = np.linalg.inv(cov)
  equal = priors is None
  priors = (
    np.full(num_classes, 1.0 / num_classes)
    if priors is None
    else np.asarray(priors, np.float64)
  )
  if (
    priors.shape != (num_classes,)
    or priors.min() <= 0
    or not math.isclose(priors.sum(), 1.0, rel_tol=1e-9)
  ):
    raise checks.LinearJaxError(
      f"priors must be {num_classes} positive numbers summing to 1"
    )
  equal = equal or np.allclose(priors, priors[0])
  log_priors = np.log(priors)

  def sample(rng, n):
    y = rng.choice(num_classes, size=n, p=priors).astype(np.int32)
    x = means[y] + rng.normal(size=(n, dim)) @ chol.T
    return x.astype(np.float32), y

  def posteriors(x):
    diff = x[:, None, :] - means[None]  # [n, K, D]
    logits = log_priors - 0.5 * np.einsum(
      "nkd,de,nke->nk", diff, precision, diff
    )
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)

  closed = None
  if num_classes == 2 and equal:
    delta = means[1] - means[0]
    closed = normal_cdf(-0.5 * math.sqrt(delta @ precision @ delta))
  return Distribution(
    "gaussians" if label_noise == 0 else "noisy_gaussians",
    num_classes,
    dim,
    _check_noise(label_noise, num_classes),
    tuple(str(k) for k in range(num_classes)),
    sample,
    posteriors,
    closed,
  )


def noisy_gaussians(
  num_classes: int = 2, dim: int = 2, *, label_noise: float = 0.1, **options
) -> Distribution:
  """``gaussians`` with label noise η (default 0.1): R* > 0 grows by
  η + (1 − 2η)R* − R* for K = 2, the Bayes classifier stays linear.
  """
  return gaussians(num_classes, dim, label_noise=label_noise, **options)


def parity(*, label_noise: float = 0.0) -> Distribution:
  """Uniform in [-1, 1]², class 1 when an odd number of coordinates is positive.

  Without noise the label is a function of x, so R* = η in closed form.
  """

  def sample(rng, n):
    x = uniform_square(rng, n, 1.0).astype(np.float32)
    return x, ((x > 0).sum(axis=1) % 2).astype(np.int32)

  def posteriors(x):
    odd = (x > 0).sum(axis=1) % 2
    return np.stack([1.0 - odd, odd], axis=1).astype(np.float64)

  return Distribution(
    "parity",
    2,
    2,
    _check_noise(label_noise, 2),
    ("even", "odd"),
    sample,
    posteriors,
    0.0,
  )


def _in_ring(p: np.ndarray) -> np.ndarray:
  norm = np.linalg.norm(p, axis=1)
  return (norm >= 1) & (norm <= 2)


def ring(*, label_noise: float = 0.0) -> Distribution:
  """Class 1 uniform on 1 ≤ ‖x‖₂ ≤ 2, class 0 uniform on the rest of [-3, 3]²
  (half the points each); R* = η in closed form.
  """

  def sample(rng, n):
    return balanced(
      rng,
      n,
      lambda k: rejection(rng, k, BOX, lambda p: ~_in_ring(p)),
      lambda k: rejection(rng, k, BOX, _in_ring),
    )

  def posteriors(x):
    inside = _in_ring(x).astype(np.float64)
    return np.stack([1.0 - inside, inside], axis=1)

  return Distribution(
    "ring",
    2,
    2,
    _check_noise(label_noise, 2),
    ("outside", "ring"),
    sample,
    posteriors,
    0.0,
  )


def _far_from_modes(p: np.ndarray) -> np.ndarray:
  dist = np.linalg.norm(p[:, None, :] - MODE_CENTRES[None], axis=-1)
  return dist.min(axis=1) >= MODE_CLEARANCE


def modes(*, label_noise: float = 0.0) -> Distribution:
  """Class 1 from three Gaussian modes, class 0 uniform elsewhere (half each).

  P(1 | x) = g(x) / (g(x) + u(x)) with g the modes' mixture density
  (1/3) Σ_k N(x; c_k, σ²I) and u = 1 / (36 − 3π) on [-3, 3]² outside the
  three discs of radius 1 (0 inside them). The modes' tails reach the
  background, so R* > 0; it has no closed form (``bayes_risk`` estimates it).
  """

  def sample(rng, n):
    def from_modes(k):
      centre = MODE_CENTRES[rng.integers(0, 3, size=k)]
      return centre + MODE_SIGMA * rng.normal(size=(k, 2))

    return balanced(
      rng, n, lambda k: rejection(rng, k, BOX, _far_from_modes), from_modes
    )

  background = 1.0 / ((2 * BOX) ** 2 - 3 * math.pi * MODE_CLEARANCE**2)

  def posteriors(x):
    sq = ((x[:, None, :] - MODE_CENTRES[None]) ** 2).sum(-1)
    g = np.exp(-sq / (2 * MODE_SIGMA**2)).mean(1) / (
      2 * math.pi * MODE_SIGMA**2
    )
    in_box = (np.abs(x) <= BOX).all(axis=1)
    u = np.where(_far_from_modes(x) & in_box, background, 0.0)
    p1 = g / np.maximum(g + u, np.finfo(np.float64).tiny)
    p1 = np.where(g + u > 0, p1, 0.0)
    return np.stack([1.0 - p1, p1], axis=1)

  return Distribution(
    "modes",
    2,
    2,
    _check_noise(label_noise, 2),
    ("elsewhere", "modes"),
    sample,
    posteriors,
    None,
  )


DISTRIBUTIONS = {
  "gaussians": gaussians,
  "noisy_gaussians": noisy_gaussians,
  "parity": parity,
  "ring": ring,
  "modes": modes,
}


def get_distribution(name: str, **options) -> Distribution:
  """``DISTRIBUTIONS[name](**options)``, or a one-line error listing the names."""
  return checks.lookup(DISTRIBUTIONS, name, "distribution")(**options)
