"""Full-batch L-BFGS with a backtracking line search, pure and ``vmap``-able.

``minimize_lbfgs`` minimizes a smooth f: R^n -> R given either f (its
gradient by ``jax.value_and_grad``) or a ``value_and_grad`` function written
by hand, e.g. one that accumulates the objective and its gradient over row
blocks in one pass. Each trial point of the line search is evaluated with
value *and* gradient, so an iteration whose first step is accepted (the
usual case) costs one evaluation: for a linear model, 4·N·D·C FLOPs.

A preconditioner P ≈ ∇²f⁻¹ serves as the initial inverse Hessian of the
two-loop recursion, and the curvature pairs (s, y) can be handed from one
solve to the next (``LbfgsMemory``): along a regularization path, where
f_new = f_old + (λ_new − λ_old)·‖W‖², the caller shifts each y by
2(λ_new − λ_old)·s and the first step from the old minimizer is already a
quasi-Newton step toward the new one; ``solve_pair`` adds the pair of the
whole solve, the curvature along the path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


class LbfgsMemory(NamedTuple):
  """The last m curvature pairs, a ring buffer.

  Attributes:
    s: ``[m, n]`` steps z_{k+1} − z_k.
    y: ``[m, n]`` gradient changes g_{k+1} − g_k.
    rho: ``[m]`` 1 / sᵀy, 0 for an empty or discarded slot (a no-op in the
      recursion).
    newest: index of the newest pair.
    stored: pairs stored so far.
  """

  s: jax.Array
  y: jax.Array
  rho: jax.Array
  newest: jax.Array
  stored: jax.Array


class LbfgsResult(NamedTuple):
  """What ``minimize_lbfgs`` returns.

  Attributes:
    z: ``[n]`` the last iterate.
    value: f(z).
    iterations: L-BFGS iterations run.
    grad_norm: ‖∇f(z)‖ (with a preconditioner P: sqrt(gᵀPg)).
    evaluations: calls of ``value_and_grad`` (the start unless
      ``initial`` was given, one per iteration, one per line-search halving).
    memory: the final ``LbfgsMemory``.
    aux: what ``value_and_grad`` returned beside f and ∇f at z (None
      without ``has_aux``).
  """

  z: jax.Array
  value: jax.Array
  iterations: jax.Array
  grad_norm: jax.Array
  evaluations: jax.Array
  memory: LbfgsMemory
  aux: Any = None


def empty_memory(n: int, memory_size: int, dtype) -> LbfgsMemory:
  """A memory with no pairs, for vectors of length n."""
  zeros = jnp.zeros((memory_size, n), dtype)
  return LbfgsMemory(
    s=zeros,
    y=zeros,
    rho=jnp.zeros((memory_size,), dtype),
    newest=jnp.asarray(memory_size - 1, jnp.int32),
    stored=jnp.zeros((), jnp.int32),
  )


def shift_memory(
  memory: LbfgsMemory, delta: ArrayLike, mask: ArrayLike = 1.0
) -> LbfgsMemory:
  """The pairs of f, made pairs of f + delta·‖mask ⊙ z‖².

  The added term's gradient changes by 2·delta·(mask ⊙ s) along a step s, so
  each y gains that; pairs left with sᵀy ≤ 0 (delta < 0 can do that) are
  dropped (rho = 0).

  Args:
    memory: pairs collected on f.
    delta: the coefficient of the added penalty (λ_new − λ_old).
    mask: ``[n]`` or scalar, 1 where the penalty applies (0 for a bias).

  Returns:
    The shifted ``LbfgsMemory``.
  """
  y = memory.y + 2 * delta * mask * memory.s
  sy = jnp.sum(memory.s * y, axis=1)
  valid = (memory.rho > 0) & (sy > 1e-10 * jnp.sum(y * y, axis=1))
  return memory._replace(
    y=y, rho=jnp.where(valid, 1 / jnp.where(valid, sy, 1), 0)
  )


def add_pair(
  memory: LbfgsMemory, s: jax.Array, y: jax.Array, ok: ArrayLike = True
) -> LbfgsMemory:
  """``memory`` with the pair (s, y) as its newest, replacing the oldest.

  The pair is skipped (``memory`` returned as it is) unless ``ok`` and
  sᵀy > 1e-10·yᵀy (a pair without curvature would break the recursion).
  """
  m = memory.s.shape[0]
  sy = jnp.vdot(s, y)
  keep = ok & (sy > 1e-10 * jnp.vdot(y, y))
  slot = jnp.where(keep, (memory.newest + 1) % m, memory.newest)
  return LbfgsMemory(
    # Row updates (not where() over [m, n]): no copy of the history.
    s=memory.s.at[slot].set(jnp.where(keep, s, memory.s[slot])),
    y=memory.y.at[slot].set(jnp.where(keep, y, memory.y[slot])),
    rho=memory.rho.at[slot].set(
      jnp.where(keep, 1 / jnp.where(keep, sy, 1), memory.rho[slot])
    ),
    newest=slot,
    stored=memory.stored + keep,
  )


def direction(g: jax.Array, memory: LbfgsMemory, precondition=None):
  """−H g by the two-loop recursion, H_0 = γ P with γ = sᵀy / yᵀPy."""
  m = memory.s.shape[0]
  precondition = precondition or (lambda v: v)
  s_hist, y_hist, rho, newest = memory.s, memory.y, memory.rho, memory.newest

  def back(i, carry):
    q, alpha = carry
    j = (newest - i) % m
    a = rho[j] * jnp.vdot(s_hist[j], q)
    return q - a * y_hist[j], alpha.at[j].set(a)

  q, alpha = jax.lax.fori_loop(0, m, back, (g, jnp.zeros((m,), g.dtype)))
  s_new, y_new = s_hist[newest], y_hist[newest]
  py = precondition(y_new)
  gamma = jnp.where(
    (memory.stored > 0) & (rho[newest] > 0),
    jnp.vdot(s_new, y_new) / jnp.maximum(jnp.vdot(y_new, py), 1e-30),
    1.0,
  )

  def forward(i, r):
    j = (newest + 1 + i) % m
    b = rho[j] * jnp.vdot(y_hist[j], r)
    return r + s_hist[j] * (alpha[j] - b)

  return -jax.lax.fori_loop(0, m, forward, gamma * precondition(q))


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
  precondition: Callable | None = None,
  memory: LbfgsMemory | None = None,
  has_aux: bool = False,
  initial: tuple | None = None,
  solve_pair: bool = False,
) -> LbfgsResult:
  """Minimizes a smooth f: R^n -> R by L-BFGS with a backtracking line search.

  The direction is d = −H g by the two-loop recursion over the stored pairs
  (s, y) with sᵀy > 0, H_0 = γ P (P the preconditioner, identity by
  default; γ = sᵀy / yᵀPy of the newest pair, 1 before the first); the step
  t ∈ {1, ½, ¼, ...} is the first with f(z + t d) ≤ f(z) + armijo · t · gᵀd.
  Stops when ‖g‖ ≤ tol; when one step decreased f by at most
  max(ftol, 2ε)·|f| and the next step's predicted decrease −gᵀd/2 is at
  most that too (scipy L-BFGS-B's ``ftol`` rule, made robust to a step that
  gains little by chance; ε is the dtype's machine epsilon: each value of f
  is rounded to about ε·|f|, so a smaller gain is within the rounding of
  the two values compared); when a step does not decrease f at all; after
  ``max_iter`` iterations; or when the line search finds no decrease (it
  stops halving at ``max_halvings``, or once the step's predicted decrease
  −t·gᵀd falls below ε·|f|). Pure and ``vmap``-able (a batch runs until its
  slowest member stops).

  Args:
    f: the objective of a flat vector (None when ``value_and_grad`` is
      given).
    z0: ``[n]`` start.
    max_iter: iterations at most.
    tol: gradient norm at which to stop.
    ftol: relative decrease at which to stop (see above; below 2ε it
      changes nothing).
    memory_size: m, stored pairs (ignored when ``memory`` is given).
    armijo: sufficient-decrease constant of the line search.
    max_halvings: halvings before the line search gives up.
    value_and_grad: z -> (f(z), ∇f(z) ``[n]``); default
      ``jax.value_and_grad(f)``.
    precondition: v -> P v, symmetric positive definite; also defines the
      norm sqrt(gᵀPg) that ``tol`` and ``grad_norm`` use.
    memory: pairs to start from (e.g. the previous solve's, adjusted).
    has_aux: ``value_and_grad`` returns ``(f, ∇f, aux)``; the result's
      ``aux`` is the one of z.
    initial: ``(f(z0), ∇f(z0))`` (with ``aux`` when ``has_aux``), already
      known: the first evaluation is skipped.
    solve_pair: the returned memory gains the pair of the whole solve,
      (z − z0, ∇f(z) − ∇f(z0)), as its newest. Along a regularization path
      it holds the curvature along the step from the previous solution to
      this one, the direction in which the next solution lies, where the
      last iterations' pairs hold tiny steps in whatever directions
      convergence left last.

  Returns:
    ``LbfgsResult``.
  """
  if value_and_grad is None:
    if f is None:
      raise TypeError("minimize_lbfgs needs f or value_and_grad")
    value_and_grad = jax.value_and_grad(f)
  evaluate = value_and_grad if has_aux else lambda z: (*value_and_grad(z), ())
  apply_p = precondition or (lambda v: v)
  if memory is None:
    memory = empty_memory(z0.shape[0], memory_size, z0.dtype)

  def norm(g):
    return jnp.sqrt(jnp.maximum(jnp.vdot(g, apply_p(g)), 0.0))

  def search_direction(g, mem):
    d = direction(g, mem, precondition)
    slope = jnp.vdot(g, d)
    # Not a descent direction (lost curvature): fall back to −Pg.
    return jax.lax.cond(
      slope < 0,
      lambda: (d, slope),
      lambda: (-apply_p(g), -jnp.vdot(g, apply_p(g))),
    )

  def cond(c):
    return (c["it"] < max_iter) & (c["gnorm"] > tol) & ~c["stalled"]

  def body(c):
    d, slope = c["d"], c["slope"]

    def sufficient(t, f_new):
      # A NaN/inf trial value fails the test too (the comparison is False).
      return f_new <= c["f"] + armijo * t * slope

    # f is known to about ε·|f| (one unit in its last place): a step whose
    # linear decrease −t·gᵀd is below that cannot show a decrease, so the
    # search halves no further (it would only find f_new == f by rounding).
    resolution = jnp.finfo(c["f"].dtype).eps * jnp.abs(c["f"])

    def ls_cond(ls):
      t, f_new, _, _, k = ls
      measurable = (k < 0) | (-(t / 2) * slope > resolution)
      return ~sufficient(t, f_new) & (k < max_halvings) & measurable

    def ls_body(ls):
      t, _, _, _, k = ls
      f_new, g_new, aux_new = evaluate(c["z"] + (t / 2) * d)
      return t / 2, f_new, g_new, aux_new, k + 1

    # Starts at t = 2 with f = inf, so the first pass of the loop evaluates
    # t = 1: one call site of value_and_grad in the loop (compile time).
    two = jnp.full((), 2, z0.dtype)
    inf = jnp.full((), jnp.inf, c["f"].dtype)
    t, f_new, g_new, aux_new, k = jax.lax.while_loop(
      ls_cond, ls_body, (two, inf, c["g"], c["aux"], -1)
    )
    ok = sufficient(t, f_new)
    z = jnp.where(ok, c["z"] + t * d, c["z"])
    value = jnp.where(ok, f_new, c["f"])
    grad = jnp.where(ok, g_new, c["g"])
    aux = jax.tree.map(lambda a, b: jnp.where(ok, a, b), aux_new, c["aux"])
    mem = add_pair(c["mem"], z - c["z"], grad - c["g"], ok)
    d_next, slope_next = search_direction(grad, mem)
    # f's rounding: ±ε·|f| each (at N = 20,000, C = 1,000 a float32 pass's
    # f was within one unit in the last place of float64's), so gains up to
    # 2ε·|f| are not measured progress, whatever ftol asks.
    eps = jnp.finfo(value.dtype).eps
    small = jnp.maximum(ftol, 2 * eps) * jnp.abs(value)
    gain = c["f"] - value
    return {
      "z": z,
      "f": value,
      "g": grad,
      "aux": aux,
      "gnorm": norm(grad),
      "d": d_next,
      "slope": slope_next,
      "mem": mem,
      "it": c["it"] + 1,
      "evals": c["evals"] + 1 + k,
      "stalled": ~ok
      | (gain <= 0)
      | ((gain <= small) & (-slope_next / 2 <= small)),
    }

  if initial is None:
    value, grad, aux = evaluate(z0)
  else:
    value, grad, aux = initial if has_aux else (*initial, ())
  d0, slope0 = search_direction(grad, memory)
  init = {
    "z": z0,
    "f": value,
    "g": grad,
    "aux": aux,
    "gnorm": norm(grad),
    "d": d0,
    "slope": slope0,
    "mem": memory,
    "it": jnp.zeros((), jnp.int32),
    "evals": jnp.full((), initial is None, jnp.int32),
    "stalled": jnp.zeros((), bool),
  }
  out = jax.lax.while_loop(cond, body, init)
  memory = out["mem"]
  if solve_pair:
    # After one iteration the solve's pair is that iteration's, stored.
    memory = add_pair(memory, out["z"] - z0, out["g"] - grad, out["it"] > 1)
  return LbfgsResult(
    out["z"],
    out["f"],
    out["it"],
    out["gnorm"],
    out["evals"],
    memory,
    out["aux"] if has_aux else None,
  )
