"""Numerical gradient checking by centred differences (the course's check).

  ∂f/∂θ_k ≈ (f(θ + h e_k) − f(θ − h e_k)) / 2h

compared with an analytic gradient by the worst relative error

  max_k |a_k − n_k| / max(|a_k| + |n_k|, tiny).

Run it in float64 (``jax.config.update("jax_enable_x64", True)``): in float32
the rounding error of f swamps h² and the check says nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def numerical_gradient(fn, params, *, step: float = 1e-5):
  """Centred-difference gradient of scalar ``fn(params)``, same pytree as params.

  All 2P perturbed evaluations run as one vmapped, jitted call.
  """
  flat, unravel = ravel_pytree(params)
  directions = jnp.eye(flat.size, dtype=flat.dtype) * step
  f = jax.jit(jax.vmap(lambda d: fn(unravel(flat + d))))
  return unravel((f(directions) - f(-directions)) / (2 * step))


def max_relative_error(analytic, numeric, *, tiny: float = 1e-30) -> float:
  """Max |a − n| / max(|a| + |n|, tiny) over every leaf and element."""
  a, _ = ravel_pytree(analytic)
  n, _ = ravel_pytree(numeric)
  return float(
    jnp.max(jnp.abs(a - n) / jnp.maximum(jnp.abs(a) + jnp.abs(n), tiny))
  )


def check_gradient(fn, params, analytic=None, *, step: float = 1e-5) -> float:
  """Worst relative error between ``analytic`` (default ``jax.grad(fn)``) and
  centred differences of ``fn`` at ``params``.
  """
  if analytic is None:
    analytic = jax.grad(fn)(params)
  return max_relative_error(analytic, numerical_gradient(fn, params, step=step))
