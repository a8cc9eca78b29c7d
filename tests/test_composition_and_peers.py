"""jit/vmap composition and cross-checks against independent definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import slow_except

import linear_jax as lj

pytestmark = pytest.mark.usefixtures("x64")  # every test in float64


def random_problem(seed=0, n=25, d=5, c=6):
  rng = np.random.default_rng(seed)
  return (
    {"W": rng.normal(size=(d, c)), "b": rng.normal(size=c)},
    rng.normal(size=(n, d)),
    rng.integers(0, c, size=n),
  )


@pytest.mark.parametrize("loss", slow_except(sorted(lj.LOSSES), "svm"))
def test_jit_objective_agrees(loss):
  params, x, y = random_problem()
  f = lambda p, lam: lj.objective(
    p, x, y, loss=loss, reg="elastic_net", reg_strength=lam
  )
  np.testing.assert_allclose(
    jax.jit(f)(params, 0.2), f(params, 0.2), rtol=1e-13
  )


def test_vmap_over_parameter_stack_agrees_with_loop():
  _, x, y = random_problem()
  rng = np.random.default_rng(5)
  stack = {"W": rng.normal(size=(7, 5, 6)), "b": rng.normal(size=(7, 6))}
  lams = jnp.linspace(0.0, 1.0, 7)
  margins = jnp.linspace(0.5, 2.0, 7)
  f = lambda p, lam, m: lj.objective(
    p, x, y, loss="svm", reg="l2", reg_strength=lam, margin=m
  )
  batched = jax.jit(jax.vmap(f))(stack, lams, margins)
  looped = [
    f({"W": stack["W"][i], "b": stack["b"][i]}, lams[i], margins[i])
    for i in range(7)
  ]
  np.testing.assert_allclose(batched, looped, rtol=1e-13)


def numpy_loop_svm(scores, labels, margin, squared):
  """The course's explicit double loop."""
  out = np.zeros(len(labels))
  for i in range(len(labels)):
    for j in range(scores.shape[1]):
      if j == labels[i]:
        continue
      m = scores[i, j] - scores[i, labels[i]] + margin
      if m > 0:
        out[i] += m * m if squared else m
  return out


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("margin", [0.0, 1.0, 2.5])
def test_svm_against_numpy_loop(squared, margin):
  params, x, y = random_problem(1)
  s = np.asarray(lj.linear_scores(params, x))
  fn = lj.squared_multiclass_hinge if squared else lj.multiclass_hinge
  np.testing.assert_allclose(
    fn(s, y, margin=margin), numpy_loop_svm(s, y, margin, squared), rtol=1e-13
  )


def test_crammer_singer_against_optax():
  params, x, y = random_problem(2)
  s = lj.linear_scores(params, x)
  np.testing.assert_allclose(
    lj.crammer_singer_hinge(s, y, margin=1.0),
    optax.losses.multiclass_hinge_loss(s, y),
    rtol=1e-13,
  )


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_softmax_against_optax(scale):
  params, x, y = random_problem(3)
  s = scale * lj.linear_scores(params, x)
  np.testing.assert_allclose(
    lj.softmax_cross_entropy(s, y),
    optax.softmax_cross_entropy_with_integer_labels(s, y),
    rtol=1e-12,
    atol=1e-12,
  )


@pytest.mark.slow
def test_weighted_objective_is_weighted_mean():
  params, x, y = random_problem(4)
  rng = np.random.default_rng(0)
  sw = rng.uniform(0, 2, size=len(y))
  cw = rng.uniform(0.5, 2, size=6)
  lam = 0.01
  counts = rng.integers(1, 4, size=len(y))

  @jax.jit
  def terms(params, x, y, sw, cw, counts, x_rep, y_rep):
    """Per-example hinge, the weighted objective, the objective with integer
    weights ``counts`` and the one of the repeated examples.
    """
    return (
      lj.multiclass_hinge(lj.linear_scores(params, x), y),
      lj.objective(
        params, x, y, reg_strength=lam, sample_weight=sw, class_weight=cw
      ),
      lj.objective(params, x, y, sample_weight=counts),
      lj.objective(params, x_rep, y_rep),
    )

  per, got, weighted, rep = terms(
    params, x, y, sw, cw, counts, np.repeat(x, counts, 0), np.repeat(y, counts)
  )
  per = np.asarray(per)
  w = sw * cw[y]
  expected = np.sum(w * per) / np.sum(w) + lam * np.sum(params["W"] ** 2)
  np.testing.assert_allclose(got, expected, rtol=1e-13)
  # Integer sample weights equal repeating examples.
  np.testing.assert_allclose(weighted, rep, rtol=1e-13)


@pytest.mark.slow
def test_all_zero_weights_leave_the_penalty_alone():
  # A minibatch of zero-weight examples (class weight 0) has no data term:
  # the objective is λR(W) and its gradient is finite, not 0/0.
  params, x, y = random_problem(6)
  lam = 0.1
  value, grad = jax.jit(jax.value_and_grad(lj.objective))(
    params, x, y, reg_strength=lam, class_weight=np.zeros(6)
  )
  np.testing.assert_allclose(value, lam * np.sum(params["W"] ** 2), rtol=1e-13)
  np.testing.assert_allclose(grad["W"], 2 * lam * params["W"], rtol=1e-13)
  np.testing.assert_array_equal(grad["b"], 0.0)


def test_bias_not_regularized_unless_asked():
  params, x, y = random_problem(5)
  base = lj.objective(params, x, y, reg="l2", reg_strength=0.5)
  with_b = lj.objective(
    params, x, y, reg="l2", reg_strength=0.5, regularize_bias=True
  )
  np.testing.assert_allclose(
    with_b - base, 0.5 * np.sum(params["b"] ** 2), rtol=1e-12
  )
  assert lj.REGULARIZERS["l2"](params["W"]) == pytest.approx(
    2 * 0.5 * np.sum(params["W"] ** 2)
  )  # ΣW² = 2·½‖W‖²
