"""linear_jax.lbfgs: L-BFGS on problems with known minimizers."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linear_jax import lbfgs


def quadratic(n=20):
  a = np.diag(np.logspace(0, 3, n))
  b = np.arange(float(n))
  return a, b, lambda z: 0.5 * z @ a @ z - b @ z


@pytest.mark.slow
def test_minimize_lbfgs_on_a_quadratic(x64):
  a, b, f = quadratic()
  r = jax.jit(lambda z0: lbfgs.minimize_lbfgs(f, z0, max_iter=500, tol=1e-10))(
    jnp.zeros(20)
  )
  z, it, evals = r.z, r.iterations, r.evaluations
  # Stops at ‖g‖ ≤ 1e-10 or when float64 sees no decrease of f; near the
  # minimum f − f* ≈ ½ eᵀAe hides errors e ≈ sqrt(eps64 · |f| / λ_min) ~ 1e-7.
  np.testing.assert_allclose(z, np.linalg.solve(a, b), rtol=1e-6)
  assert it < 500
  assert evals >= it + 1


@pytest.mark.slow
def test_value_and_grad_gives_the_same_iterates(x64):
  # A hand-written value_and_grad replaces jax.value_and_grad(f) exactly.
  a, b, f = quadratic()

  @jax.jit
  def both(z0):
    by_f = lbfgs.minimize_lbfgs(f, z0, max_iter=15, tol=0.0)
    by_vg = lbfgs.minimize_lbfgs(
      None,
      z0,
      max_iter=15,
      tol=0.0,
      value_and_grad=lambda z: (f(z), jnp.asarray(a) @ z - b),
    )
    return by_f, by_vg

  by_f, by_vg = both(jnp.zeros(20))
  # Same iterates up to the rounding of two gradient formulas.
  np.testing.assert_allclose(by_vg.z, by_f.z, rtol=1e-9)
  assert by_vg.iterations == by_f.iterations == 15
  assert by_vg.evaluations == by_f.evaluations


@pytest.mark.slow
def test_vmapped_runs_stop_on_their_own(x64):
  # Each member of a vmapped batch keeps its own iteration count.
  _, _, f = quadratic()
  run = jax.jit(
    jax.vmap(
      lambda scale: (
        lbfgs.minimize_lbfgs(
          lambda z: scale * f(z), jnp.zeros(20), max_iter=500, tol=1e-8
        ).iterations
      )
    )
  )
  its = run(jnp.asarray([1.0, 1e-6]))
  assert its[1] < its[0]  # the flat one stops at the tolerance sooner


def test_exact_preconditioner_solves_a_quadratic_in_one_step(x64):
  a, b, f = quadratic()
  r = lbfgs.minimize_lbfgs(
    f,
    jnp.zeros(20),
    max_iter=50,
    tol=1e-9,
    precondition=lambda v: v / jnp.diag(jnp.asarray(a)),
  )
  np.testing.assert_allclose(r.z, np.linalg.solve(a, b), rtol=1e-9)
  assert r.iterations == 1
  # grad_norm is the preconditioned norm sqrt(gᵀPg).
  assert r.grad_norm <= 1e-9


@pytest.mark.slow
def test_shifted_memory_holds_the_new_secant_equations(x64):
  # f_λ = ½zᵀAz − bᵀz + λ‖z_W‖² (the last entry, a "bias", unpenalized):
  # after the shift every kept pair satisfies y = ∇²f_λ₂ s exactly, and a
  # pair the shift makes non-convex (sᵀy ≤ 0) is dropped.
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
  a = q @ np.diag(np.logspace(0, 2, 8)) @ q.T
  b = rng.normal(size=8)
  mask = np.r_[np.ones(7), 0.0]

  def f(lam):
    return lambda z: 0.5 * z @ a @ z - b @ z + lam * jnp.sum(mask * z * z)

  first = jax.jit(
    lambda z0: lbfgs.minimize_lbfgs(f(1.0), z0, max_iter=6, tol=0.0)
  )(jnp.zeros(8))
  shift_memory = jax.jit(lbfgs.shift_memory)
  mem = shift_memory(first.memory, 0.5 - 1.0, mask)
  hessian = a + 2 * 0.5 * np.diag(mask)
  kept = np.asarray(mem.rho) > 0
  assert kept.sum() == 6
  np.testing.assert_allclose(
    mem.y[kept], np.asarray(mem.s[kept]) @ hessian, rtol=1e-10, atol=1e-12
  )
  np.testing.assert_allclose(
    mem.rho[kept], 1 / np.sum(mem.s[kept] * mem.y[kept], 1), rtol=1e-12
  )
  # A shift by −λ_min(A)/2 − 1 leaves no curvature along some steps.
  dropped = shift_memory(first.memory, -1.0 - 0.5 - 1.0, mask)
  assert np.sum(np.asarray(dropped.rho) > 0) < 6


def test_add_pair_replaces_the_oldest_and_skips_pairs_without_curvature(x64):
  add_pair = jax.jit(lbfgs.add_pair)  # one program for every pair below
  mem = lbfgs.empty_memory(3, 2, jnp.float64)
  pairs = [
    (np.r_[1.0, 0, 0], np.r_[2.0, 0, 0]),
    (np.r_[0, 1.0, 0], np.r_[0, 3.0, 0]),
  ]
  for s, y in pairs:
    mem = add_pair(mem, jnp.asarray(s), jnp.asarray(y))
  assert int(mem.stored) == 2
  np.testing.assert_allclose(mem.s[mem.newest], pairs[1][0])
  np.testing.assert_allclose(mem.rho, [1 / 2, 1 / 3])
  # sᵀy < 0: skipped, nothing changes.
  same = add_pair(mem, jnp.asarray([1.0, 0, 0]), jnp.asarray([-1.0, 0, 0]))
  assert int(same.stored) == 2 and int(same.newest) == int(mem.newest)
  np.testing.assert_allclose(same.s, mem.s)
  # A third pair takes the oldest slot (the first pair's).
  third = add_pair(mem, jnp.asarray([0, 0, 1.0]), jnp.asarray([0, 0, 4.0]))
  np.testing.assert_allclose(third.s[third.newest], [0, 0, 1.0])
  np.testing.assert_allclose(sorted(np.asarray(third.rho)), [1 / 4, 1 / 3])


def softmax_regression(n=200, d=8, c=4, seed=0):
  """f_λ(z) = mean CE(xW + b) + λΣW², z = (W [d, c], b [c]) flattened."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, c, n)
  x = rng.normal(size=(n, d)) + 1.5 * rng.normal(size=(c, d))[y]
  dc = d * c

  def f(z, lam):
    w, b = z[:dc].reshape(d, c), z[dc:]
    s = x @ w + b
    ce = jax.nn.logsumexp(s, axis=1) - s[np.arange(n), y]
    return jnp.mean(ce) + lam * jnp.sum(w * w)

  return f, dc + c, np.r_[np.ones(dc), np.zeros(c)]


@pytest.mark.slow
def test_solve_pair_is_a_secant_pair_and_predicts_the_next_solution(x64):
  # A path λ₀ > λ₁ > λ₂ with few stored pairs, each λ warm started with the
  # previous memory shifted (as linear_jax.path does): the solve's pair
  # (z₁ − z₀, ∇f(z₁) − ∇f(z₀)) is exact, and with the λ₁ solve's pair (the
  # step along the path) the first quasi-Newton step of λ₂ lands closer to
  # its optimum.
  f, n, mask = softmax_regression()
  lams = [1e-2, 10**-2.5, 1e-3]
  grad = jax.jit(jax.grad(f))

  # λ is an argument (one program for every λ of a kind of solve).
  @functools.partial(jax.jit, static_argnames=("solve_pair",))
  def path_step(z, memory, lam, previous, *, solve_pair):
    return lbfgs.minimize_lbfgs(
      lambda z: f(z, lam),
      z,
      max_iter=500,
      tol=1e-6,
      memory=lbfgs.shift_memory(memory, lam - previous, mask),
      solve_pair=solve_pair,
    )

  @jax.jit
  def first_and_best(z, memory):
    first = lbfgs.minimize_lbfgs(
      lambda z: f(z, lams[2]),
      z,
      max_iter=1,
      tol=0.0,
      memory=lbfgs.shift_memory(memory, lams[2] - lams[1], mask),
    )
    best = lbfgs.minimize_lbfgs(
      lambda z: f(z, lams[2]), z, max_iter=500, tol=1e-10
    )
    return first, best

  gaps = {}
  for solve_pair in (False, True):
    z, memory, previous = (
      jnp.zeros(n),
      lbfgs.empty_memory(n, 3, jnp.float64),
      lams[0],
    )
    for lam in lams[:2]:
      start = z
      r = path_step(z, memory, lam, previous, solve_pair=solve_pair)
      z, memory, previous = r.z, r.memory, lam
    if solve_pair:
      newest = int(memory.newest)
      np.testing.assert_allclose(memory.s[newest], z - start)
      np.testing.assert_allclose(
        memory.y[newest], grad(z, lams[1]) - grad(start, lams[1]), atol=1e-12
      )
    first, best = first_and_best(z, memory)
    gaps[solve_pair] = float(first.value - best.value)
  # Measured 0.43 of the gap without it.
  assert 0 < gaps[True] < 0.6 * gaps[False]


def test_line_search_halves_no_further_than_f_can_resolve():
  # float32 f near its minimum: the exact Newton step predicts a decrease of
  # 4e-9, far below f's resolution ε·|f| ≈ 1.2e-7, and rounding makes every
  # other point look 4 ulps higher. Halving on took 16 more passes to reach
  # a step that rounds to no step at all; the search stops after its first
  # trial and the solve stalls where it started.
  z0 = jnp.full(4, 1.001, jnp.float32)
  eps = float(jnp.finfo(jnp.float32).eps)

  def f(z):
    bump = jnp.where(jnp.any(z != z0), 4 * eps, 0.0)
    return 1.0 + 1e-3 * jnp.sum((z - 1.0) ** 2) + bump

  r = jax.jit(
    lambda z: lbfgs.minimize_lbfgs(
      f, z, max_iter=10, tol=0.0, precondition=lambda v: v / 2e-3
    )
  )(z0)
  assert int(r.iterations) == 1
  assert int(r.evaluations) == 2  # the start and the one trial
  np.testing.assert_array_equal(r.z, z0)


@pytest.mark.slow
def test_ftol_below_twice_epsilon_changes_nothing():
  # Each float32 value of f is rounded to about ε·|f|, so a gain within
  # 2ε·|f| is no measured progress: ftol = 0 stops where ftol = 2ε does
  # (here 517 iterations; stopping only at a zero gain took 560), and a
  # larger ftol stops sooner.
  a = jnp.asarray(np.logspace(0, 4, 50), jnp.float32)

  def f(z):
    return 1.0 + jnp.sum(a * (z - 1.0) ** 2)

  eps = float(jnp.finfo(jnp.float32).eps)
  # ftol is an argument: one program for the three runs.
  solve = jax.jit(
    lambda ftol: lbfgs.minimize_lbfgs(
      f,
      jnp.zeros(50, jnp.float32),
      max_iter=2000,
      tol=0.0,
      ftol=ftol,
      memory_size=3,
    )
  )
  runs = {ftol: solve(ftol) for ftol in (0.0, 2 * eps, 1e-6)}
  assert int(runs[0.0].iterations) == int(runs[2 * eps].iterations) < 2000
  np.testing.assert_array_equal(runs[0.0].z, runs[2 * eps].z)
  assert int(runs[1e-6].iterations) < int(runs[0.0].iterations)
