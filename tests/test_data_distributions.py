"""Distributions with a known Bayes risk: sampler, posteriors and R* agree."""

import math

import numpy as np
import pytest

from linear_jax import LinearJaxError
from linear_jax.data import distributions, embedded

NAMES = tuple(distributions.DISTRIBUTIONS)


@pytest.mark.parametrize("norm", [0.5, 1.0, 2.0])
def test_two_gaussians_monte_carlo_matches_phi(norm):
  """R* = Φ(−‖μ‖) for means ±μ, Σ = I; μ not along an axis, D = 3."""
  mu = norm * np.array([1.0, -2.0, 2.0]) / 3.0
  dist = distributions.gaussians(2, 3, means=np.stack([-mu, mu]))
  expected = distributions.normal_cdf(-norm)
  # Closed form: Φ(−Δ/2) with Δ = 2‖μ‖; rounding of a few float64 ops.
  assert dist.bayes_risk_closed_form == pytest.approx(expected, rel=1e-12)
  mc = dist.bayes_risk_monte_carlo(200_000, seed=int(10 * norm))
  assert mc.se > 0
  assert abs(mc.value - expected) <= 3 * mc.se


def test_normal_cdf_known_values():
  assert distributions.normal_cdf(0.0) == 0.5
  assert distributions.normal_cdf(-1.0) == pytest.approx(
    0.15865525393145707, rel=1e-14
  )


@pytest.mark.parametrize("name", NAMES)
def test_bayes_classifier_error_matches_bayes_risk(name):
  """On labelled samples (label noise 0.1), the Bayes classifier errs at rate
  E[1 − max_k P(k|x)]: the sampler and the posteriors describe one
  distribution. Tolerance: 3 standard errors of the difference.
  """
  dist = distributions.get_distribution(name, label_noise=0.1)
  x, y = dist.sample(200_000, seed=7)
  wrong = (dist.bayes_predict(x) != y).astype(np.float64)
  diff = wrong - dist.conditional_bayes_error(x)
  assert abs(diff.mean()) <= 3 * diff.std(ddof=1) / math.sqrt(len(diff))
  closed = dist.bayes_risk_closed_form
  if closed is not None:
    assert abs(wrong.mean() - closed) <= 3 * math.sqrt(
      closed * (1 - closed) / len(wrong)
    )


def test_closed_forms_with_label_noise():
  eta, norm = 0.2, 1.5
  noisy = distributions.noisy_gaussians(separation=norm, label_noise=eta)
  phi = distributions.normal_cdf(-norm)
  assert noisy.bayes_risk_closed_form == pytest.approx(
    eta + (1 - 2 * eta) * phi, rel=1e-12
  )
  assert distributions.parity(label_noise=eta).bayes_risk_closed_form == (
    pytest.approx(eta, rel=1e-12)
  )
  assert distributions.ring(label_noise=eta).bayes_risk_closed_form == (
    pytest.approx(eta, rel=1e-12)
  )
  assert distributions.modes().bayes_risk_closed_form is None
  mc = distributions.modes().bayes_risk(200_000, seed=3)
  assert mc.method.startswith("monte carlo") and 0 < mc.value < 0.01


def test_label_noise_keeps_the_bayes_classifier():
  """Noise moves P(k|x) towards uniform without changing its argmax (K = 3)."""
  clean = distributions.gaussians(3, 2, separation=2.0)
  noisy = distributions.gaussians(3, 2, separation=2.0, label_noise=0.3)
  x, _ = clean.sample(5_000, seed=0)
  np.testing.assert_array_equal(clean.bayes_predict(x), noisy.bayes_predict(x))
  p = noisy.posteriors(x)
  np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
  assert p.min() >= 0.3 / 2 - 1e-12  # η/(K−1) is the floor


def test_samples_are_seeded_and_balanced():
  for name in NAMES:
    dist = distributions.get_distribution(name)
    x1, y1 = dist.sample(1000, seed=[1, 2])
    x2, y2 = dist.sample(1000, seed=[1, 2])
    x3, _ = dist.sample(1000, seed=[1, 3])
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert x1.dtype == np.float32 and y1.dtype == np.int32
    assert x1.shape == (1000, dist.dim) and set(np.unique(y1)) == {0, 1}


def test_embedded_hard_cases_are_samples_of_the_distributions():
  for make, dist, seed in (
    (embedded.hard_parity, distributions.parity(), 1),
    (embedded.hard_ring, distributions.ring(), 2),
    (embedded.hard_modes, distributions.modes(), 3),
  ):
    x, y = make().splits["train"]
    x2, y2 = dist.sample(embedded.NUM_POINTS, seed)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_bad_input():
  with pytest.raises(LinearJaxError, match="label_noise"):
    distributions.parity(label_noise=0.5)
  with pytest.raises(LinearJaxError, match="distribution"):
    distributions.get_distribution("spiral")
  with pytest.raises(LinearJaxError, match="positive definite"):
    distributions.gaussians(covariance=-np.eye(2))
  with pytest.raises(LinearJaxError, match="means"):
    distributions.gaussians(2, 3, means=np.zeros((2, 2)))
