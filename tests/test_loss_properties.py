"""The lecture's questions about the losses, as property tests on random inputs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import slow_except

import linear_jax as lj

HINGES = ("svm", "squared_svm", "crammer_singer")


pytestmark = pytest.mark.usefixtures("x64")  # every test in float64


@functools.partial(jax.jit, static_argnames="name")
def losses_at(params, x, y, *, name):
  """``lj.LOSSES[name]`` of the linear scores of ``x``, per example."""
  return lj.LOSSES[name](lj.linear_scores(params, x), y)


@jax.jit
def hinge_and_softmax(params, x, y, margin):
  """Per-example multiclass hinge (with ``margin``) and softmax cross-entropy
  of the linear scores of ``x``.
  """
  s = lj.linear_scores(params, x)
  return lj.multiclass_hinge(s, y, margin=margin), lj.softmax_cross_entropy(
    s, y
  )


@jax.jit
def scores_and_hinge(params, x, y, margin):
  """The linear scores of ``x`` and their per-example multiclass hinge."""
  s = lj.linear_scores(params, x)
  return s, lj.multiclass_hinge(s, y, margin=margin)


# The objective with its static loss name, one program per loss and shape.
jit_objective = jax.jit(lj.objective, static_argnames="loss")


def random_problem(seed, n=32, d=7, c=5, scale=1.0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d))
  y = rng.integers(0, c, size=n)
  params = {
    "W": scale * rng.normal(size=(d, c)),
    "b": scale * rng.normal(size=c),
  }
  return params, x, y


@pytest.mark.parametrize("name", sorted(lj.LOSSES))
@pytest.mark.parametrize("seed", slow_except(range(5), 0))
def test_every_loss_is_nonnegative(name, seed):
  params, x, y = random_problem(seed, scale=3.0)
  losses = losses_at(params, x, y, name=name)
  assert losses.shape == (32,)
  assert np.all(np.asarray(losses) >= 0)


@pytest.mark.parametrize("margin", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("c", slow_except([2, 3, 10], 3))
def test_at_tiny_weights_svm_is_c_minus_1_delta_softmax_is_log_c(margin, c):
  params, x, y = random_problem(0, c=c, scale=1e-9)
  hinge, softmax = hinge_and_softmax(params, x, y, margin)
  np.testing.assert_allclose(hinge, (c - 1) * margin, rtol=1e-6)
  np.testing.assert_allclose(softmax, np.log(c), rtol=1e-6)


@pytest.mark.parametrize("seed", slow_except(range(3), 0))
def test_summing_over_all_classes_adds_exactly_delta(seed):
  params, x, y = random_problem(seed, scale=0.3)
  margin = 1.7
  s, hinge = map(np.asarray, scores_and_hinge(params, x, y, margin))
  all_classes = np.maximum(
    0, s - s[np.arange(len(y)), y][:, None] + margin
  ).sum(1)
  np.testing.assert_allclose(
    all_classes,
    hinge + margin,
    rtol=1e-12,
  )


def test_mean_instead_of_sum_scales_by_1_over_c_minus_1_and_keeps_argmin():
  rng = np.random.default_rng(1)
  n, d, c = 40, 6, 4
  x = rng.normal(size=(n, d))
  y = rng.integers(0, c, size=n)
  candidates = [
    {"W": rng.normal(size=(d, c)), "b": rng.normal(size=c)} for _ in range(50)
  ]

  def mean_over_wrong_classes(params):  # independent definition
    s = x @ params["W"] + params["b"]
    terms = np.maximum(0, s - s[np.arange(n), y][:, None] + 1.0)
    terms[np.arange(n), y] = 0.0
    return terms.sum(1) / (c - 1)

  sums = [float(jit_objective(p, x, y, loss="svm")) for p in candidates]
  means = [float(mean_over_wrong_classes(p).mean()) for p in candidates]
  np.testing.assert_allclose(means, np.array(sums) / (c - 1), rtol=1e-12)
  assert int(np.argmin(means)) == int(np.argmin(sums))


def separable_problem():
  rng = np.random.default_rng(2)
  c, d = 3, 2
  centres = np.array([[10.0, 0.0], [-5.0, 8.7], [-5.0, -8.7]])
  y = np.repeat(np.arange(c), 10)
  x = centres[y] + 0.3 * rng.normal(size=(30, d))
  params = {"W": 0.02 * centres.T, "b": np.zeros(c)}
  return params, x, y


@pytest.mark.slow
def test_zero_loss_stays_zero_at_2w_for_svm_but_softmax_decreases():
  params, x, y = separable_problem()
  double = jax.tree.map(lambda a: 2 * a, params)
  for name in HINGES:
    assert float(jit_objective(params, x, y, loss=name)) == 0.0
    assert float(jit_objective(double, x, y, loss=name)) == 0.0
  sm1 = float(jit_objective(params, x, y, loss="softmax"))
  sm2 = float(jit_objective(double, x, y, loss="softmax"))
  assert 0.0 < sm2 < sm1


@pytest.mark.slow
def test_jiggling_well_separated_scores():
  scores = np.array(
    [[10.0, -2.0, 3.0], [10.0, 9.0, 9.0], [10.0, -100.0, -100.0]]
  )
  labels = np.zeros(3, int)
  jiggle = np.array([[0.0, 0.5, -0.5], [0.0, -0.3, -0.3], [0.0, 5.0, 5.0]])
  # Each loss before and after the jiggle, one program per loss.
  both = {
    name: jax.jit(
      lambda s, j, name=name: (
        lj.LOSSES[name](s, labels),
        lj.LOSSES[name](s + j, labels),
      )
    )(scores, jiggle)
    for name in lj.LOSSES
  }
  for name in HINGES:
    np.testing.assert_array_equal(both[name][0], 0.0)
    np.testing.assert_array_equal(both[name][1], 0.0)
  before, after = map(np.asarray, both["softmax"])
  assert np.all(before > 0) and np.all(after != before)
  # Even the near-certain third example keeps its exact loss, log1p(2e^-110).
  np.testing.assert_allclose(before[2], 2 * np.exp(-110.0), rtol=1e-14)


@pytest.mark.parametrize("big", [1e4, -1e4])
def test_softmax_is_finite_for_huge_and_minus_inf_scores(big):
  scores = jnp.array(
    [[big, 0.0, -big], [0.0, -jnp.inf, 1.0], [big, -jnp.inf, big]]
  )
  labels = jnp.array([0, 2, 2])

  @jax.jit
  def losses_and_gradients(scores, labels):
    losses = lj.softmax_cross_entropy(scores, labels)
    grad = jax.grad(lambda s: lj.softmax_cross_entropy(s, labels).sum())(scores)
    return losses, grad, lj.SCORE_GRADIENTS["softmax"](scores, labels)

  losses, grad, closed_form = losses_and_gradients(scores, labels)
  assert np.all(np.isfinite(losses))
  np.testing.assert_allclose(losses[1], np.log1p(np.exp(-1.0)), rtol=1e-12)
  np.testing.assert_allclose(losses[2], np.log(2.0), rtol=1e-12)
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(
    np.asarray(grad)[1],
    [np.exp(0) / (1 + np.e), 0.0, -1 / (1 + np.e)],
    rtol=1e-12,
  )
  np.testing.assert_allclose(grad, closed_form, atol=1e-15)


def test_label_smoothing_target():
  scores = jnp.array([[1.0, 2.0, 3.0, 4.0]])
  labels = jnp.array([1])
  eps = 0.2
  logp, smoothed = jax.jit(
    lambda s: (
      jax.nn.log_softmax(s[0]),
      lj.softmax_cross_entropy(s, labels, label_smoothing=eps),
    )
  )(scores)
  target = (1 - eps) * np.eye(4)[1] + eps / 4
  expected = -np.sum(target * np.asarray(logp))
  np.testing.assert_allclose(smoothed[0], expected, rtol=1e-12)
