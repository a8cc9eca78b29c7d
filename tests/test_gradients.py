"""Gradient verification, three ways, for every loss × regularizer (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import slow_except
from jax.test_util import check_grads

import linear_jax as lj

LOSSES = sorted(lj.LOSSES)
REGS = sorted(lj.REGULARIZERS)


pytestmark = pytest.mark.usefixtures("x64")  # every test in float64


def problem_away_from_kinks(loss, seed=0, n=20, d=6, c=4):
  """A random problem whose hinge margins stay ≥ 1e-3 away from 0 and whose
  Crammer–Singer maxima are not tied, so finite differences are smooth.
  """
  rng = np.random.default_rng(seed)
  for _ in range(1000):
    x = rng.normal(size=(n, d))
    y = rng.integers(0, c, size=n)
    params = {"W": 0.5 * rng.normal(size=(d, c)), "b": 0.5 * rng.normal(size=c)}
    s = x @ params["W"] + params["b"]
    m = s - s[np.arange(n), y][:, None] + 1.0
    m[np.arange(n), y] = np.inf
    top2 = np.sort(np.where(np.isinf(m), -np.inf, m), axis=1)[:, -2:]
    if (
      np.min(np.abs(m)) > 1e-3
      and np.min(top2[:, 1] - top2[:, 0]) > 1e-3
      and np.min(np.abs(params["W"])) > 1e-3
    ):
      return params, jnp.asarray(x), jnp.asarray(y)
  raise AssertionError("no kink-free problem found")


def options(loss):
  return {"label_smoothing": 0.1} if loss == "softmax" else {"margin": 1.0}


@pytest.mark.parametrize("reg", REGS)
@pytest.mark.parametrize("loss", slow_except(LOSSES, "svm"))
def test_closed_form_matches_autodiff(loss, reg):
  params, x, y = problem_away_from_kinks(loss)
  kw = dict(loss=loss, reg=reg, reg_strength=0.3, **options(loss))
  auto = jax.grad(lambda p: lj.objective(p, x, y, **kw))(params)
  closed = lj.objective_gradient(params, x, y, **kw)
  assert lj.max_relative_error(closed, auto) < 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("loss", slow_except(LOSSES, "svm"))
def test_closed_form_matches_autodiff_with_weights_and_bias_penalty(loss):
  params, x, y = problem_away_from_kinks(loss, seed=3)
  rng = np.random.default_rng(0)
  kw = dict(
    loss=loss,
    reg="elastic_net",
    reg_strength=0.05,
    l1_ratio=0.3,
    sample_weight=rng.uniform(0.1, 2.0, size=y.shape[0]),
    class_weight=rng.uniform(0.5, 3.0, size=4),
    regularize_bias=True,
    **options(loss),
  )
  auto = jax.grad(lambda p: lj.objective(p, x, y, **kw))(params)
  closed = lj.objective_gradient(params, x, y, **kw)
  assert lj.max_relative_error(closed, auto) < 1e-10


@pytest.mark.parametrize("reg", REGS)
@pytest.mark.parametrize("loss", slow_except(LOSSES, "svm"))
def test_finite_differences_match_autodiff(loss, reg):
  params, x, y = problem_away_from_kinks(loss, seed=1)
  f = lambda p: lj.objective(
    p, x, y, loss=loss, reg=reg, reg_strength=0.3, **options(loss)
  )
  # h = 1e-4 moves scores by < 1e-3, so no step crosses a kink; smaller h lets
  # float64 rounding (~1e-16·|L|/h) swamp the tiniest gradient entries.
  assert lj.check_gradient(f, params, step=1e-4) < 1e-7


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_check_grads_on_objective(loss):
  params, x, y = problem_away_from_kinks(loss, seed=2)
  f = lambda w, b: lj.objective(
    {"W": w, "b": b},
    x,
    y,
    loss=loss,
    reg="l2",
    reg_strength=0.1,
    **options(loss),
  )
  # Step well below the 1e-3 distance to the nearest kink. Under jit, each
  # derivative check_grads takes (jvp, vjp, their second order) is one
  # program rather than one per primitive.
  check_grads(
    jax.jit(f),
    (params["W"], params["b"]),
    order=2,
    modes=("fwd", "rev"),
    eps=1e-5,
  )


def test_gradient_checker_detects_a_wrong_gradient():
  params, x, y = problem_away_from_kinks("softmax")
  f = lambda p: lj.objective(
    p, x, y, loss="softmax", reg="l2", reg_strength=0.3
  )
  wrong = lj.objective_gradient(
    params, x, y, loss="softmax", reg="l2", reg_strength=0.0
  )  # forgets λ∂R/∂W
  assert lj.check_gradient(f, params, wrong) > 1e-3
