"""linear_jax.lbfgs: L-BFGS on problems with known minimizers."""

import jax
import jax.numpy as jnp
import numpy as np

from linear_jax import lbfgs


def quadratic(n=20):
  a = np.diag(np.logspace(0, 3, n))
  b = np.arange(float(n))
  return a, b, lambda z: 0.5 * z @ a @ z - b @ z


def test_minimize_lbfgs_on_a_quadratic(x64):
  a, b, f = quadratic()
  z, value, it, gnorm, evals = lbfgs.minimize_lbfgs(
    f, jnp.zeros(20), max_iter=500, tol=1e-10
  )
  # Stops at ‖g‖ ≤ 1e-10 or when float64 sees no decrease of f; near the
  # minimum f − f* ≈ ½ eᵀAe hides errors e ≈ sqrt(eps64 · |f| / λ_min) ~ 1e-7.
  np.testing.assert_allclose(z, np.linalg.solve(a, b), rtol=1e-6)
  assert it < 500
  assert evals >= it + 1


def test_value_and_grad_gives_the_same_iterates(x64):
  # A hand-written value_and_grad replaces jax.value_and_grad(f) exactly.
  a, b, f = quadratic()
  by_f = lbfgs.minimize_lbfgs(f, jnp.zeros(20), max_iter=15, tol=0.0)
  by_vg = lbfgs.minimize_lbfgs(
    None,
    jnp.zeros(20),
    max_iter=15,
    tol=0.0,
    value_and_grad=lambda z: (f(z), jnp.asarray(a) @ z - b),
  )
  # Same iterates up to the rounding of two gradient formulas.
  np.testing.assert_allclose(by_vg.z, by_f.z, rtol=1e-9)
  assert by_vg.iterations == by_f.iterations == 15
  assert by_vg.evaluations == by_f.evaluations


def test_vmapped_runs_stop_on_their_own(x64):
  # Each member of a vmapped batch keeps its own iteration count.
  _, _, f = quadratic()
  run = jax.vmap(
    lambda scale: (
      lbfgs.minimize_lbfgs(
        lambda z: scale * f(z), jnp.zeros(20), max_iter=500, tol=1e-8
      ).iterations
    )
  )
  its = run(jnp.asarray([1.0, 1e-6]))
  assert its[1] < its[0]  # the flat one stops at the tolerance sooner
