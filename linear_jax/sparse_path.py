"""The regularization path on sparse rows: every λ solved, full batch, in CSR.

The same problems as ``linear_jax.path.lambda_path``, for
``scipy.sparse`` rows that are never densified:

    L_k(W, b) = (1/N) Σ_i L_i((x_i − μ)W + b, y_i) + λ_k Σ W²

with the centring implicit, (x − μ)W + b = xW + (b − μW): μ ``[D]`` is
the training column mean and the centred rows are never formed
(``linear_jax.sparse.data_term_sums``). Centring changes no minimizer (b is
free), only the conditioning of b's direction, and is undone at the end.

Each λ is solved by full-batch L-BFGS (``linear_jax.path.minimize_lbfgs``)
in diagonally preconditioned coordinates W = U ⊘ √(ρ v + 2λ_k), v_j the
centred variance of feature j and ρ the loss's curvature scale
(``path.CURVATURE``): the Jacobi part of the Hessian bound ρ·(X_cᵀX_c/N) +
2λI, cheap to form from sparse columns where the Nyström preconditioner of
the dense path would need products with a ``[D, r]`` matrix. One λ after
another from the largest, each warm started at the previous solution (a
``lax.scan``). Each objective evaluation is one pass over the rows in
blocks: a gather of W's rows and, for the gradient, its scatter-add
transpose; the line search evaluates the value only.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from linear_jax import checks, sparse
from linear_jax import losses as losses_lib
from linear_jax.lbfgs import minimize_lbfgs
from linear_jax.path import CURVATURE, PathResult, select


def _value_only(params, x, y, shift, *, loss, block_rows, **options):
  """Σ_i L_i of ``data_term_sums`` without the gradient (line searches)."""
  loss_fn = losses_lib.get_loss(loss)
  n = x.shape[0]
  offset = params["b"] - shift @ params["W"]

  def body(total, start):
    rows, real = sparse.block_indices(start, block_rows, n)
    s = sparse.scores({"W": params["W"]}, x.rows(rows)) + offset
    value = jnp.where(real, loss_fn(s, y[rows], **options), 0)
    return total + jnp.sum(value), None

  total, _ = jax.lax.scan(
    body,
    jnp.zeros((), params["W"].dtype),
    jnp.asarray(sparse.block_starts(n, block_rows)),
  )
  return total


@functools.partial(
  jax.jit,
  static_argnames=(
    "loss",
    "num_classes",
    "max_iter",
    "memory_size",
    "block_rows",
  ),
)
def _solve(
  x,
  y,
  mu,
  variance,
  reg_strengths,
  margin,
  tol,
  ftol,
  *,
  loss,
  num_classes,
  max_iter,
  memory_size,
  block_rows,
):
  """Preconditioned L-BFGS for every λ, warm started in the given order."""
  d = x.shape[1]
  n = x.shape[0]
  rho = CURVATURE[loss]
  options = losses_lib.loss_options(loss, margin=margin)
  kwargs = dict(loss=loss, block_rows=block_rows, **options)

  def solve_one(carry, lam):
    w0, b0 = carry
    root = jnp.sqrt(rho * variance + 2 * lam)  # diag H^{1/2}

    def unflatten(z):
      return {
        "W": z[: d * num_classes].reshape(d, num_classes) / root[:, None],
        "b": z[d * num_classes :],
      }

    @jax.custom_vjp
    def f(z):
      p = unflatten(z)
      data = _value_only(p, x, y, mu, **kwargs)
      return data / n + lam * jnp.sum(jnp.square(p["W"]))

    def f_fwd(z):
      p = unflatten(z)
      total, g = sparse.data_term_sums(p, x, y, shift=mu, **kwargs)
      value = total / n + lam * jnp.sum(jnp.square(p["W"]))
      gw = (g["W"] / n + 2 * lam * p["W"]) / root[:, None]
      return value, jnp.concatenate([gw.reshape(-1), g["b"] / n])

    def f_bwd(grad, ct):
      return (ct * grad,)

    f.defvjp(f_fwd, f_bwd)
    z0 = jnp.concatenate([(w0 * root[:, None]).reshape(-1), b0])
    result = minimize_lbfgs(
      f, z0, max_iter=max_iter, tol=tol, ftol=ftol, memory_size=memory_size
    )
    p = unflatten(result.z)
    out = (result.value, result.iterations, result.grad_norm)
    return (p["W"], p["b"]), (p["W"], p["b"], *out)

  dtype = mu.dtype
  init = (jnp.zeros((d, num_classes), dtype), jnp.zeros((num_classes,), dtype))
  _, (w, b, value, it, gnorm) = jax.lax.scan(solve_one, init, reg_strengths)
  # Undo the centring: (x − μ)W + b = xW + (b − μW).
  return {"W": w, "b": b - jnp.einsum("d,kdc->kc", mu, w)}, value, it, gnorm


def _accuracies(params: dict, x, y) -> np.ndarray:
  """Accuracy of each of K models on rows ``[K]`` (sparse, or dense ones
  stored as CSR).
  """
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  if not sparse.is_sparse(x):
    x = scipy.sparse.csr_matrix(np.asarray(x, np.float32))
  rows = sparse.device_rows(x, params["W"].dtype)
  y = jnp.asarray(y, jnp.int32)
  return np.asarray(
    [
      float(
        sparse.jit_accuracy({"W": params["W"][k], "b": params["b"][k]}, rows, y)
      )
      for k in range(params["W"].shape[0])
    ]
  )


def sparse_lambda_path(
  x_train,
  y_train: ArrayLike,
  x_val,
  y_val: ArrayLike,
  x_test=None,
  y_test: ArrayLike | None = None,
  *,
  reg_strengths: ArrayLike,
  loss: str = "softmax",
  margin: float = 1.0,
  num_classes: int | None = None,
  max_iter: int = 500,
  tol: float = 1e-6,
  ftol: float = 1e-7,
  memory_size: int = 10,
  block_rows: int = sparse.BLOCK_ROWS,
) -> PathResult:
  """Solves L_k for every λ_k on sparse rows; selects on validation.

  Args:
    x_train: ``scipy.sparse`` ``[N, D]`` rows (preprocessed, not centred).
    y_train: ``[N]`` int labels in [0, C).
    x_val: ``scipy.sparse`` ``[N_val, D]`` selection rows.
    y_val: ``[N_val]`` labels.
    x_test: ``[N_test, D]`` sparse rows or None.
    y_test: ``[N_test]`` labels or None.
    reg_strengths: λ ``[K]``, each ≥ 0.
    loss: a name in ``linear_jax.LOSSES``; R(W) = ΣW².
    margin: Δ for the hinge losses.
    num_classes: C (default: max label + 1).
    max_iter: L-BFGS iterations at most, per λ.
    tol: stop once the gradient norm in preconditioned coordinates is below
      this.
    ftol: stop once an iteration lowers L by at most ftol·L, and the next
      is predicted to lower it no more (never below 2ε·L, the rounding of
      two float values of L; ``lbfgs.minimize_lbfgs``).
    memory_size: L-BFGS stored pairs.
    block_rows: rows per block of each pass over the data.

  Returns:
    ``linear_jax.path.PathResult`` (params ``[K, D, C]`` of the uncentred
    rows, objective, iterations, accuracies, selection).
  """
  losses_lib.get_loss(loss)
  lams = np.asarray(reg_strengths, np.float64).reshape(-1)
  if lams.size == 0:
    raise checks.LinearJaxError(
      "reg_strengths is empty; pass at least one λ ≥ 0"
    )
  checks.check_nonnegative(lams, "reg_strength (λ)")
  if not sparse.is_sparse(x_train):
    raise checks.LinearJaxError(
      "sparse_lambda_path takes scipy.sparse rows; use "
      "linear_jax.path.lambda_path for dense ones"
    )
  x_host = sparse.as_csr(x_train, "x_train")
  y_train = np.asarray(y_train, np.int32)
  if y_train.shape != (x_host.shape[0],):
    raise checks.LinearJaxError(
      f"x_train {x_host.shape} and y_train {y_train.shape} must be [N, D] "
      "and [N]; pass one label per row"
    )
  if num_classes is None:
    num_classes = int(y_train.max()) + 1
  checks.check_label_range(y_train, num_classes)
  dtype = (
    np.float64
    if jax.dtypes.canonicalize_dtype(np.float64) == np.float64
    else np.float32
  )
  n = x_host.shape[0]
  total, sq = sparse.column_moments(x_host)
  mu = total / n
  variance = np.maximum(sq / n - mu * mu, 0.0)
  x = sparse.to_device(x_host, dtype)
  order = np.argsort(-lams, kind="stable")  # largest λ first
  unsort = np.argsort(order)
  params, value, iters, gnorm = _solve(
    x,
    jnp.asarray(y_train),
    jnp.asarray(mu, dtype),
    jnp.asarray(variance, dtype),
    jnp.asarray(lams[order], dtype),
    jnp.asarray(margin, dtype),
    jnp.asarray(tol, dtype),
    jnp.asarray(ftol, dtype),
    loss=loss,
    num_classes=int(num_classes),
    max_iter=int(max_iter),
    memory_size=int(memory_size),
    block_rows=int(min(block_rows, max(n, 1))),
  )
  params, value, iters, gnorm = jax.tree.map(
    lambda a: a[unsort], (params, value, iters, gnorm)
  )
  val = _accuracies(params, x_val, y_val)
  test = (
    _accuracies(params, x_test, y_test)
    if x_test is not None
    else np.full(len(lams), np.nan)
  )
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
