"""The regularization path: every λ solved to its optimum in one compiled program.

The linear-probe workflow: for λ_1..λ_K minimize

    L_k(W, b) = (1/N) Σ_i L_i(x_i W + b, y_i) + λ_k Σ W²       (b unregularized)

choose the λ with the best validation accuracy, and report its test accuracy.
``lambda_path`` solves all K problems in one compiled program (λ an array), by
full-batch L-BFGS (``minimize_lbfgs``, backtracking line search) in
preconditioned coordinates: one λ after another from the largest, each warm
started at the previous solution (``lax.scan``; CPUs), or all λ at once from
zero (``vmap``; accelerators). There is no learning rate to sweep: the line
search sets the step.

Preconditioning: the data part of the Hessian is bounded by ρ·(X_cᵀX_c/N) ⊗ A
(X_c the centred rows; for softmax ρ = ½ and A the projection I − 11ᵀ/C,
Böhning's bound), so each λ's Hessian is close to ρG + 2λI with
G = X_cᵀX_c/N. Correlated features (neighbouring pixels) make G, and so
the problem, ill-conditioned for plain L-BFGS. A randomized Nyström approximation of G, rank r,
G ≈ V diag(s) Vᵀ + s_tail (I − VVᵀ) (``nystrom_gram``, two passes over X,
no D³ factorization), gives H_k = V diag(ρs + 2λ_k) Vᵀ + (ρ s_tail + 2λ_k)
(I − VVᵀ), and L-BFGS runs on U with W = H_k^{-1/2} U: per iteration and λ
that costs two ``[D, r] × [r, C]`` products beside the ``[N, D] × [D, C]``
scores. The centring is undone exactly at the end: (x − μ)W + b = xW + (b − μW).

When N < D (features wider than the training set, e.g. a probe on a few
thousand examples), the problem is first rewritten in an orthonormal basis of
the centred rows' span (``row_space_basis``): the minimizers are the same and
each step costs [N, N] × [N, C] instead of [N, D] × [D, C].

Hinge losses (``svm``, ``crammer_singer``) are not differentiable at the
margin; L-BFGS on them stops at the iteration cap near the minimizer rather
than at a gradient tolerance. ``squared_svm`` and ``softmax`` are smooth.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from linear_jax import checks
from linear_jax import losses as losses_lib
from linear_jax.objective import objective

# Curvature scale of each loss's data term per unit of G (see module doc).
CURVATURE = {
  "softmax": 0.5,
  "squared_svm": 2.0,
  "svm": 1.0,
  "crammer_singer": 1.0,
}


@dataclasses.dataclass(frozen=True)
class PathResult:
  """One solved regularization path.

  Attributes:
    reg_strengths: λ ``[K]``.
    params: ``{"W": [K, D, C], "b": [K, C]}``, the minimizer for each λ, in
      the coordinates of the rows passed (the centring undone).
    objective: L_k at ``params`` on the training rows ``[K]``.
    iterations: L-BFGS iterations run ``[K]`` (the batch runs until the
      slowest λ stops).
    grad_norm: final gradient norm in preconditioned coordinates ``[K]``.
    val_accuracy, test_accuracy: ``[K]`` (test NaN when no test rows).
    best: index of the selected λ (highest validation accuracy; ties go to
      the larger λ).
  """

  reg_strengths: np.ndarray
  params: dict
  objective: np.ndarray
  iterations: np.ndarray
  grad_norm: np.ndarray
  val_accuracy: np.ndarray
  test_accuracy: np.ndarray
  best: int

  @property
  def best_reg_strength(self) -> float:
    """The selected λ, ``reg_strengths[best]``."""
    return float(self.reg_strengths[self.best])


def nystrom_gram(
  x: ArrayLike, *, rank: int, key: jax.Array, power_iterations: int = 1
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Randomized low-rank eigendecomposition of G = xᵀx / N.

  G ≈ V diag(s) Vᵀ + s_tail (I − VVᵀ): a randomized range finder with
  ``power_iterations`` extra passes (Halko, Martinsson & Tropp 2011, alg.
  4.4), then the eigendecomposition of the ``[r, r]`` projection; s_tail is
  the mean of the remaining spectrum, (tr G − Σ s) / (D − r).

  Args:
    x: ``[N, D]`` rows (centred by the caller when G should be a covariance).
    rank: r ≤ D.
    key: PRNG key of the Gaussian test matrix.
    power_iterations: extra passes of xᵀx that sharpen the subspace.

  Returns:
    ``(V [D, r] orthonormal, s [r] descending, s_tail scalar)``.
  """
  x = jnp.asarray(x)
  n, d = x.shape
  q = jax.random.normal(key, (d, rank), x.dtype)
  for _ in range(power_iterations + 1):
    q, _ = jnp.linalg.qr(x.T @ (x @ q))
  xq = x @ q
  s, e = jnp.linalg.eigh(xq.T @ xq / n)
  s, e = s[::-1], e[:, ::-1]
  tail = (jnp.sum(x * x) / n - jnp.sum(s)) / max(d - rank, 1)
  return q @ e, jnp.maximum(s, 0.0), jnp.maximum(tail, 0.0)


def row_space_basis(
  x: np.ndarray, *, rcond: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
  """An orthonormal basis B ``[D, r]`` of the centred rows' span, and μ ``[D]``.

  With L2 regularization the minimizer W lies in the span of the centred
  rows X_c (∂L/∂W = X_cᵀ(...) + 2λW, and W = 0 at the start); writing
  W = B W_z gives scores X_c B W_z and ΣW² = ΣW_z², the same problem with
  r ≤ min(N, D) features. B = X_cᵀ U S^{-1/2} from the eigendecomposition
  X_c X_cᵀ = U S Uᵀ (float64), keeping eigenvalues above rcond · max S.

  Args:
    x: ``[N, D]`` rows.
    rcond: relative cut-off of the eigenvalues.

  Returns:
    ``(B [D, r], μ [D])``, float64.
  """
  x = np.asarray(x, np.float64)
  mu = x.mean(axis=0)
  xc = x - mu
  s, u = np.linalg.eigh(xc @ xc.T)
  keep = s > rcond * max(s.max(), np.finfo(np.float64).tiny)
  return xc.T @ (u[:, keep] / np.sqrt(s[keep])), mu


def minimize_lbfgs(
  f,
  z0: jax.Array,
  *,
  max_iter: int,
  tol: ArrayLike,
  ftol: ArrayLike = 0.0,
  memory_size: int = 10,
  armijo: float = 1e-4,
  max_halvings: int = 30,
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
    f: the objective of a flat vector.
    z0: ``[n]`` start.
    max_iter: iterations at most.
    tol: stop once ‖g‖ ≤ tol.
    ftol: stop once a step lowers f by at most ftol·|f|.
    memory_size: m, the stored (s, y) pairs.
    armijo: the sufficient-decrease constant of the line search.
    max_halvings: step halvings at most per line search.

  Returns:
    ``(z [n], f(z), iterations, ‖∇f(z)‖)``.
  """
  m = memory_size
  value_and_grad = jax.value_and_grad(f)
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
      t, f_new, k = ls
      return (f_new > c["f"] + armijo * t * slope) & (k < max_halvings)

    def ls_body(ls):
      t, _, k = ls
      return t / 2, f(c["z"] + (t / 2) * d), k + 1

    t, _, k = jax.lax.while_loop(
      ls_cond, ls_body, (jnp.ones((), z0.dtype), f(c["z"] + d), 0)
    )
    ok = k < max_halvings
    z = jnp.where(ok, c["z"] + t * d, c["z"])
    value, grad = value_and_grad(z)
    s, y = z - c["z"], grad - c["g"]
    sy = jnp.vdot(s, y)
    keep = ok & (sy > 1e-10 * jnp.vdot(y, y))
    slot = jnp.where(keep, (c["newest"] + 1) % m, c["newest"])
    return {
      "z": z,
      "f": value,
      "g": grad,
      "gnorm": jnp.linalg.norm(grad),
      "S": jnp.where(keep, c["S"].at[slot].set(s), c["S"]),
      "Y": jnp.where(keep, c["Y"].at[slot].set(y), c["Y"]),
      "rho": jnp.where(keep, c["rho"].at[slot].set(1 / sy), c["rho"]),
      "newest": slot,
      "count": c["count"] + keep,
      "it": c["it"] + 1,
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
    "stalled": jnp.zeros((), bool),
  }
  out = jax.lax.while_loop(cond, body, init)
  return out["z"], out["f"], out["it"], out["gnorm"]


@functools.partial(
  jax.jit,
  static_argnames=(
    "loss",
    "num_classes",
    "max_iter",
    "rank",
    "memory_size",
    "warm_start",
  ),
)
def _solve(
  x,
  y,
  reg_strengths,
  margin,
  tol,
  ftol,
  key,
  *,
  loss,
  num_classes,
  max_iter,
  rank,
  memory_size,
  warm_start,
):
  """Preconditioned L-BFGS for every λ (module doc), in one program: a scan
  over λ in the given order, each started from the previous solution
  (``warm_start``), or ``vmap`` over λ from zero.
  """
  d = x.shape[1]
  mu = jnp.mean(x, axis=0)
  xc = x - mu
  v, s, tail = nystrom_gram(xc, rank=rank, key=key)
  rho = CURVATURE[loss]
  options = losses_lib.loss_options(loss, margin=margin)

  def solve_one(lam, w0, b0):
    top = jnp.sqrt(rho * s + 2 * lam)  # H^{1/2} on span(V)
    rest = jnp.sqrt(rho * tail + 2 * lam)  # H^{1/2} on its complement

    def to_w(u):  # W = H^{-1/2} U
      return v @ ((1 / top - 1 / rest)[:, None] * (v.T @ u)) + u / rest

    def f(p):
      return objective(
        {"W": to_w(p["U"]), "b": p["b"]},
        xc,
        y,
        loss=loss,
        reg="l2",
        reg_strength=lam,
        **options,
      )

    shapes = (d, num_classes)

    def flat_f(z):
      return f(
        {"U": z[: d * num_classes].reshape(shapes), "b": z[d * num_classes :]}
      )

    u0 = v @ ((top - rest)[:, None] * (v.T @ w0)) + rest * w0  # U = H^{1/2} W
    z, value, it, gnorm = minimize_lbfgs(
      flat_f,
      jnp.concatenate([u0.reshape(-1), b0]),
      max_iter=max_iter,
      tol=tol,
      ftol=ftol,
      memory_size=memory_size,
    )
    params = {
      "U": z[: d * num_classes].reshape(shapes),
      "b": z[d * num_classes :],
    }
    return to_w(params["U"]), params["b"], value, it, gnorm

  w0 = jnp.zeros((d, num_classes), x.dtype)
  b0 = jnp.zeros((num_classes,), x.dtype)
  if warm_start:

    def step(carry, lam):
      out = solve_one(lam, *carry)
      return out[:2], out

    _, (w, b, value, it, gnorm) = jax.lax.scan(step, (w0, b0), reg_strengths)
  else:
    w, b, value, it, gnorm = jax.vmap(solve_one, in_axes=(0, None, None))(
      reg_strengths, w0, b0
    )
  # Undo the centring: (x − μ)W + b = xW + (b − μW).
  return {"W": w, "b": b - jnp.einsum("d,kdc->kc", mu, w)}, value, it, gnorm


@jax.jit
def _accuracies(params, x, y):
  """Accuracy of each of K models ``{"W": [K, D, C], "b": [K, C]}`` -> ``[K]``."""
  scores = jnp.einsum("nd,kdc->knc", x, params["W"]) + params["b"][:, None]
  return jnp.mean(jnp.argmax(scores, -1) == y, axis=-1)


def lambda_path(
  x_train: ArrayLike,
  y_train: ArrayLike,
  x_val: ArrayLike,
  y_val: ArrayLike,
  x_test: ArrayLike | None = None,
  y_test: ArrayLike | None = None,
  *,
  reg_strengths: ArrayLike,
  loss: str = "softmax",
  margin: float = 1.0,
  num_classes: int | None = None,
  max_iter: int = 500,
  tol: float = 1e-6,
  ftol: float = 1e-7,
  rank: int = 256,
  memory_size: int = 10,
  warm_start: bool | None = None,
  row_space: bool | None = None,
  seed: int = 0,
) -> PathResult:
  """Solves L_k for every λ_k, selects on validation, evaluates on test.

  Args:
    x_train: ``[N, D]`` float rows (preprocessed as for training).
    y_train: ``[N]`` int labels in [0, C).
    x_val: ``[N_val, D]`` the selection split.
    y_val: ``[N_val]`` its labels.
    x_test: ``[N_test, D]`` or None.
    y_test: ``[N_test]`` or None.
    reg_strengths: λ ``[K]``, each ≥ 0 (λ = 0 is solved up to ``max_iter``
      when the data are separable).
    loss: a name in ``linear_jax.LOSSES``; R(W) = ΣW² (``"l2"``).
    margin: Δ for the hinge losses.
    num_classes: C (default: max label + 1).
    max_iter: L-BFGS iterations at most.
    tol: stop once the gradient norm in preconditioned coordinates is below
      this.
    ftol: stop once an iteration lowers L by at most ftol·L (the default,
      about float32's ε, stops when float32 sees no further progress).
    rank: r of the Nyström preconditioner (capped at D).
    memory_size: L-BFGS stored pairs.
    warm_start: solve the λ one after another from the largest, each
      started at the previous solution (a ``lax.scan``), instead of all at
      once from zero (``vmap``). None: warm starts on CPUs, ``vmap`` on
      accelerators. A vmapped batch runs until its slowest λ (the smallest)
      converges and multiplies every step's FLOPs by K, which a FLOP-bound
      CPU pays in full; warm starts cut the iterations of each λ and keep one
      [N, D] × [D, C] product per step, which leaves a GPU idle.
    row_space: solve in the span of the centred training rows (see
      ``row_space_basis``): r ≤ N features instead of D, exactly the same
      minimizers. None: when N < D.
    seed: seeds the preconditioner's random test matrix.

  Returns:
    ``PathResult`` (params ``[K, D, C]``, objective, accuracies, selection).
  """
  losses_lib.get_loss(loss)
  lams = np.asarray(reg_strengths, np.float64).reshape(-1)
  if lams.size == 0:
    raise checks.LinearJaxError(
      "reg_strengths is empty; pass at least one λ ≥ 0"
    )
  checks.check_integer_labels(y_train=y_train, y_val=y_val, y_test=y_test)
  checks.check_nonnegative(lams, "reg_strength (λ)")
  x_train = jnp.asarray(x_train)  # float64 stays float64 under jax_enable_x64
  if x_train.dtype not in (jnp.float32, jnp.float64):
    x_train = x_train.astype(jnp.float32)
  y_train = jnp.asarray(y_train, jnp.int32)
  if x_train.ndim != 2 or y_train.shape != x_train.shape[:1]:
    raise checks.LinearJaxError(
      f"x_train {x_train.shape} and y_train {y_train.shape} must be [N, D] "
      "and [N]; pass one label per row"
    )
  if num_classes is None:
    num_classes = int(jax.device_get(jnp.max(y_train))) + 1
  checks.check_label_range(y_train, num_classes)
  dtype = x_train.dtype
  n, d = x_train.shape
  if row_space is None:
    row_space = n < d
  x_solve = x_train
  if row_space:
    basis, mu = row_space_basis(np.asarray(x_train))
    x_solve = jnp.asarray((np.asarray(x_train, np.float64) - mu) @ basis, dtype)
  rank = int(min(rank, x_solve.shape[1]))
  if warm_start is None:
    warm_start = jax.default_backend() == "cpu"
  order = np.argsort(-lams, kind="stable")  # largest λ first
  unsort = np.argsort(order)
  params, value, iters, gnorm = _solve(
    x_solve,
    y_train,
    jnp.asarray(lams[order], dtype),
    jnp.asarray(margin, dtype),
    jnp.asarray(tol, dtype),
    jnp.asarray(ftol, dtype),
    jax.random.key(seed),
    loss=loss,
    num_classes=num_classes,
    max_iter=int(max_iter),
    rank=rank,
    memory_size=int(memory_size),
    warm_start=bool(warm_start),
  )
  params, value, iters, gnorm = jax.tree.map(
    lambda a: a[unsort], (params, value, iters, gnorm)
  )
  if row_space:
    # (x − μ)B W_z + b_z = xW + (b_z − μW) with W = B W_z.
    w = jnp.einsum("dr,krc->kdc", jnp.asarray(basis, dtype), params["W"])
    params = {
      "W": w,
      "b": params["b"] - jnp.einsum("d,kdc->kc", jnp.asarray(mu, dtype), w),
    }
  val = np.asarray(
    _accuracies(
      params, jnp.asarray(x_val, dtype), jnp.asarray(y_val, jnp.int32)
    )
  )
  if x_test is not None:
    test = np.asarray(
      _accuracies(
        params, jnp.asarray(x_test, dtype), jnp.asarray(y_test, jnp.int32)
      )
    )
  else:
    test = np.full(len(lams), np.nan)
  return PathResult(
    reg_strengths=lams,
    params=jax.device_get(params),
    objective=np.asarray(value),
    iterations=np.asarray(iters),
    grad_norm=np.asarray(gnorm),
    val_accuracy=val,
    test_accuracy=test,
    best=select(lams, val),
  )


def select(reg_strengths: ArrayLike, val_accuracy: ArrayLike) -> int:
  """Index of the highest validation accuracy; ties go to the larger λ."""
  lams = np.asarray(reg_strengths)
  acc = np.asarray(val_accuracy)
  order = np.argsort(-lams, kind="stable")  # largest λ first
  return int(order[np.argmax(acc[order])])
