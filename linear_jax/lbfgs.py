"""Full-batch L-BFGS with a backtracking line search, pure and ``vmap``-able.

``minimize_lbfgs`` minimizes a smooth f: R^n -> R given either f (its
gradient by ``jax.value_and_grad``) or a ``value_and_grad`` function written
by hand, e.g. one that accumulates the objective and its gradient over row
blocks in one pass. Each trial point of the line search is evaluated with
value *and* gradient, so an iteration whose first step is accepted (the
usual case) costs one evaluation: for a linear model, 4·N·D·C FLOPs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


class LbfgsResult(NamedTuple):
  """What ``minimize_lbfgs`` returns.

  Attributes:
    z: ``[n]`` the last iterate.
    value: f(z).
    iterations: L-BFGS iterations run.
    grad_norm: ‖∇f(z)‖.
    evaluations: calls of ``value_and_grad`` (the start, one per iteration,
      one per line-search halving).
  """

  z: jax.Array
  value: jax.Array
  iterations: jax.Array
  grad_norm: jax.Array
  evaluations: jax.Array


def minimize_lbfgs(
  f: Callable | None,
  z0: jax.Array,
  *,
  max_iter: int,
  tol: ArrayLike,
  ftol: ArrayLike = 0.0,
  memory_size: int = 10,
  armijo: float = 1e-4,
  max_halvings: int = 30,
  value_and_grad: Callable | None = None,
):
  """Minimizes a smooth f: R^n -> R by L-BFGS with a backtracking line search.

  The direction is −H g by the two-loop recursion over the last
  ``memory_size`` pairs (s, y) with sᵀy > 0, H_0 = (sᵀy / yᵀy) I (I at
  first); the step t ∈ {1, ½, ¼, ...} is the first with
  f(z + t d) ≤ f(z) + armijo · t · gᵀd. Stops when ‖g‖ ≤ tol, when one
  step decreases f by at most ftol·|f| (scipy L-BFGS-B's ``ftol`` rule), after
  ``max_iter`` iterations, or when no step decreases f. Pure and ``vmap``-able
  (a batch runs until its slowest member stops).

  Args:
    f: the objective of a flat vector (None when ``value_and_grad`` is
      given).
    z0: ``[n]`` start.
    max_iter, tol, ftol, memory_size, armijo, max_halvings: as above.
    value_and_grad: z -> (f(z), ∇f(z) ``[n]``); default
      ``jax.value_and_grad(f)``.

  Returns:
    ``LbfgsResult(z [n], f(z), iterations, ‖∇f(z)‖, evaluations)``.
  """
  if value_and_grad is None:
    if f is None:
      raise TypeError("minimize_lbfgs needs f or value_and_grad")
    value_and_grad = jax.value_and_grad(f)
  m = memory_size
  value, grad = value_and_grad(z0)
  zeros = jnp.zeros((m,) + z0.shape, z0.dtype)

  def direction(g, s_hist, y_hist, rho, newest, count):
    def back(i, carry):
      q, alpha = carry
      j = (newest - i) % m
      a = rho[j] * jnp.vdot(s_hist[j], q)
      return q - a * y_hist[j], alpha.at[j].set(a)

    q, alpha = jax.lax.fori_loop(0, m, back, (g, jnp.zeros((m,), g.dtype)))
    s_new, y_new = s_hist[newest], y_hist[newest]
    gamma = jnp.where(
      count > 0,
      jnp.vdot(s_new, y_new) / jnp.maximum(jnp.vdot(y_new, y_new), 1e-30),
      1.0,
    )

    def forward(i, r):
      j = (newest + 1 + i) % m
      b = rho[j] * jnp.vdot(y_hist[j], r)
      return r + s_hist[j] * (alpha[j] - b)

    return -jax.lax.fori_loop(0, m, forward, gamma * q)

  def cond(c):
    return (c["it"] < max_iter) & (c["gnorm"] > tol) & ~c["stalled"]

  def body(c):
    d = direction(c["g"], c["S"], c["Y"], c["rho"], c["newest"], c["count"])
    slope = jnp.vdot(c["g"], d)
    # Not a descent direction (lost curvature): fall back to −g.
    d, slope = jax.lax.cond(
      slope < 0,
      lambda: (d, slope),
      lambda: (-c["g"], -jnp.vdot(c["g"], c["g"])),
    )

    def ls_cond(ls):
      t, f_new, _, k = ls
      # A NaN/inf trial value fails the test too (the comparison is False).
      return ~(f_new <= c["f"] + armijo * t * slope) & (k < max_halvings)

    def ls_body(ls):
      t, _, _, k = ls
      f_new, g_new = value_and_grad(c["z"] + (t / 2) * d)
      return t / 2, f_new, g_new, k + 1

    one = jnp.ones((), z0.dtype)
    t, f_new, g_new, k = jax.lax.while_loop(
      ls_cond, ls_body, (one, *value_and_grad(c["z"] + d), 0)
    )
    ok = k < max_halvings
        "it {i} f {f:.9g} fnew {fn:.9g} t {t} k {k} dec {dec:.3g} gn {gn:.3g}",
        i=c["it"],
        f=c["f"],
        fn=f_new,
        t=t,
        k=k,
        dec=-slope / 2,
        gn=c["gnorm"],
      )
    z = jnp.where(ok, c["z"] + t * d, c["z"])
    value = jnp.where(ok, f_new, c["f"])
    grad = jnp.where(ok, g_new, c["g"])
    s, y = z - c["z"], grad - c["g"]
    sy = jnp.vdot(s, y)
    keep = ok & (sy > 1e-10 * jnp.vdot(y, y))
    slot = jnp.where(keep, (c["newest"] + 1) % m, c["newest"])
    return {
      "z": z,
      "f": value,
      "g": grad,
      "gnorm": jnp.linalg.norm(grad),
      # Row updates (not where() over [m, n]): no copy of the history.
      "S": c["S"].at[slot].set(jnp.where(keep, s, c["S"][slot])),
      "Y": c["Y"].at[slot].set(jnp.where(keep, y, c["Y"][slot])),
      "rho": c["rho"].at[slot].set(jnp.where(keep, 1 / sy, c["rho"][slot])),
      "newest": slot,
      "count": c["count"] + keep,
      "it": c["it"] + 1,
      "evals": c["evals"] + 1 + k,
      "stalled": ~ok | (c["f"] - value <= ftol * jnp.abs(value)),
    }

  init = {
    "z": z0,
    "f": value,
    "g": grad,
    "gnorm": jnp.linalg.norm(grad),
    "S": zeros,
    "Y": zeros,
    "rho": jnp.zeros((m,), z0.dtype),
    "newest": jnp.asarray(m - 1),
    "count": jnp.zeros((), jnp.int32),
    "it": jnp.zeros((), jnp.int32),
    "evals": jnp.ones((), jnp.int32),
    "stalled": jnp.zeros((), bool),
  }
  out = jax.lax.while_loop(cond, body, init)
  return LbfgsResult(out["z"], out["f"], out["it"], out["gnorm"], out["evals"])
