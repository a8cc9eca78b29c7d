"""The regularization path: every λ solved to its optimum, at any N.

The linear-probe workflow: for λ_1..λ_K minimize

    L_k(W, b) = (1/N) Σ_i L_i((x_i − μ)W + b, y_i) + λ_k Σ W²   (b unregularized)

choose the λ with the best validation accuracy, and report its test accuracy.
(μ is the training rows' mean; the solution is returned for the uncentred
rows, xW + (b − μW).) ``lambda_path`` solves the K problems by full-batch
preconditioned L-BFGS (``linear_jax.lbfgs``): one λ after another from the
largest, each warm started at the previous solution with the previous
solve's curvature pairs (CPUs), or all λ of a chunk at once (``vmap``;
accelerators). Each λ's solver is one compiled program, compiled once for the
whole path. There is no learning rate to sweep: the line search sets the
step.

Memory scales with the data, not with N·C: every pass over the training rows
(the mean, the Gram products, the objective and its gradient, accuracies)
is a scan over row blocks that centres each block as it reads it
(``linear_jax.row_blocks``), so there is no copy of X and no ``[N, C]``
array. X may be stored as float16 or bfloat16; sums are float32. Rows can be
sharded over processes (``sharded=True``, ``linear_jax.shards``): each
process passes its own rows and every sum is added across processes.

Preconditioning: the data part of the Hessian, (1/N) Σ_i x_c,i x_c,iᵀ ⊗
(diag(p_i) − p_i p_iᵀ) for softmax, is approximated by ρ·G ⊗ I (G =
X_cᵀX_c/N the centred rows' covariance), so each λ's Hessian by
M_k = ρG ⊗ I + 2λ_k I, and M_k⁻¹ is L-BFGS's initial inverse Hessian. For
softmax ρ matches the trace of the data Hessian at the warm start
(``row_blocks.pass_sums``: 1/C at W = 0, falling as predictions grow
confident; a fixed bound such as Böhning's ½ overstates it by up to C/2 and
leaves the preconditioned problem that ill-conditioned); the bias gets its
own, unweighted, match. Other losses use the fixed ``CURVATURE``. G comes
as an eigendecomposition, exact (D small against the rank r: one
``[D, D]`` Gram pass) or a randomized Nyström approximation of rank r
(``nystrom_gram``), G ≈ V diag(s) Vᵀ + s_tail (I − VVᵀ), so applying M_k⁻¹
costs two ``[D, r] × [r, C]`` products beside the 4·N·D·C of an evaluation
of the objective and its gradient. Moving to the next λ adds
(λ_new − λ_old)ΣW² to the objective, whose effect on the stored pairs is
exact (``lbfgs.shift_memory``), so the pairs carry over and the first step
from the previous solution is already a quasi-Newton step toward the next.
Each solve also leaves one pair spanning its whole step, from the previous
solution to its own (``minimize_lbfgs(solve_pair=True)``): the curvature
along the path itself, which the last iterations' short steps do not hold.

When N < D (features wider than the training set, e.g. a probe on a few
thousand examples), the problem is first rewritten in an orthonormal basis of
the centred rows' span (``row_space_basis``): the minimizers are the same and
each step costs [N, N] × [N, C] instead of [N, D] × [D, C].

Hinge losses (``svm``, ``crammer_singer``) are not differentiable at the
margin; L-BFGS on them stops at the iteration cap near the minimizer rather
than at a gradient tolerance. ``squared_svm`` and ``softmax`` are smooth.

scikit-learn's C maps to λ by ``reg_strength_from_C``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from linear_jax import checks, lbfgs, row_blocks, shards
from linear_jax import losses as losses_lib

# Curvature scale of each loss's data term per unit of G (see module doc).
CURVATURE = {
  "softmax": 0.5,
  "squared_svm": 2.0,
  "svm": 1.0,
  "crammer_singer": 1.0,
}
# Stored feature dtypes used as they are; others are converted to float32.
STORAGE_DTYPES = ("float16", "bfloat16", "float32", "float64")

# Python traces of each compiled program (tests check that a path compiles
# each program once, whatever its λ values).
TRACES = {"prepare": 0, "solve": 0, "evaluate": 0}


def reg_strength_from_C(  # noqa: N802  (scikit-learn's name for the knob)
  C: ArrayLike,  # noqa: N803
  num_rows: int,
  num_classes: int,
) -> np.ndarray:
  """λ that makes L_k the objective scikit-learn minimizes at its C.

  ``LogisticRegression(C=C)`` minimizes C Σ_i CE_i + ½ ΣW². With three or
  more classes it fits one weight vector per class, so dividing by C·N gives
  (1/N) Σ CE_i + ΣW² / (2·C·N): λ = 1/(2·C·N). With two classes it fits one
  vector w = w₁ − w₀; softmax's optimum has w₀ = −w₁ = −w/2, so
  λ ΣW² = λ‖w‖²/2, and λ = 1/(C·N).

  Args:
    C: scikit-learn's inverse regularization strength(s), each > 0.
    num_rows: N, the training rows.
    num_classes: C (the number of classes; 2 for the binary mapping).

  Returns:
    λ, float64, the shape of ``C``.
  """
  cs = np.asarray(C, np.float64)
  if cs.size and not np.all(cs > 0):
    bad = cs[~(cs > 0)].flat[0]
    raise checks.LinearJaxError(
      f"C must be > 0 (scikit-learn's inverse regularization), got "
      f"{bad:g}; pass positive values"
    )
  if num_rows < 1 or num_classes < 2:
    raise checks.LinearJaxError(
      f"the C mapping needs ≥ 1 rows and ≥ 2 classes, got "
      f"num_rows={num_rows}, num_classes={num_classes}"
    )
  factor = 1.0 if num_classes == 2 else 2.0
  return 1.0 / (factor * cs * num_rows)


@dataclasses.dataclass(frozen=True)
class PathResult:
  """One solved regularization path.

  Attributes:
    reg_strengths: λ ``[K]``.
    params: ``{"W": [K, D, C], "b": [K, C]}``, the minimizer for each λ, in
      the coordinates of the rows passed (the centring undone).
    objective: L_k at ``params`` on the training rows ``[K]``.
    iterations: L-BFGS iterations run ``[K]`` (a vmapped chunk runs until
      its slowest λ stops).
    grad_norm: final gradient norm in preconditioned coordinates ``[K]``.
    val_accuracy, test_accuracy: ``[K]`` (test NaN when no test rows).
    best: index of the selected λ (highest validation accuracy; ties go to
      the larger λ).
    train_accuracy: ``[K]`` on the training rows.
    seconds: ``[K]`` wall time of each λ (solve and evaluation; a vmapped
      chunk's time is split evenly over its λ).
    evaluations: ``[K]`` passes of the objective and its gradient, 4·N·D·C
      FLOPs each (a vmapped chunk's count is its slowest λ's).
  """

  reg_strengths: np.ndarray
  params: dict
  objective: np.ndarray
  iterations: np.ndarray
  grad_norm: np.ndarray
  val_accuracy: np.ndarray
  test_accuracy: np.ndarray
  best: int
  train_accuracy: np.ndarray | None = None
  seconds: np.ndarray | None = None
  evaluations: np.ndarray | None = None

  @property
  def best_reg_strength(self) -> float:
    """λ at ``best``."""
    return float(self.reg_strengths[self.best])


def _gram_eigen(
  x, mu, num_rows, *, rank, key, power_iterations, block, num_valid, axis
):
  """(V [D, r], s [r] descending, s_tail) of G = Σ(x − μ)ᵀ(x − μ)/N.

  Exact (one ``[D, D]`` pass and an ``eigh``, keeping the top r) when that
  costs no more than the Nyström passes (2·N·D² ≤ 4·(q + 2)·N·D·r FLOPs for
  q power iterations), else the randomized Nyström approximation.
  """
  d = x.shape[1]
  kw = dict(block_rows=block, num_valid=num_valid, axis_name=axis)
  if d <= 2 * (power_iterations + 2) * rank:
    g = row_blocks.centred_gram(x, mu, **kw) / num_rows
    s, e = jnp.linalg.eigh(g)
    s, e = s[::-1], e[:, ::-1]
    tail = jnp.sum(s[rank:]) / max(d - rank, 1)
    return e[:, :rank], jnp.maximum(s[:rank], 0.0), jnp.maximum(tail, 0.0)
  q = jax.random.normal(key, (d, rank), mu.dtype)
  for _ in range(power_iterations + 1):
    gq, _ = row_blocks.centred_gram_product(x, mu, q, **kw)
    q, _ = jnp.linalg.qr(gq)
  gq, sq = row_blocks.centred_gram_product(x, mu, q, **kw)
  s, e = jnp.linalg.eigh(q.T @ gq / num_rows)
  s, e = s[::-1], e[:, ::-1]
  tail = (sq / num_rows - jnp.sum(s)) / max(d - rank, 1)
  return q @ e, jnp.maximum(s, 0.0), jnp.maximum(tail, 0.0)


def nystrom_gram(
  x: ArrayLike,
  *,
  rank: int,
  key: jax.Array,
  power_iterations: int = 1,
  mu: ArrayLike | None = None,
  block_rows: int = 65536,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Randomized low-rank eigendecomposition of G = (x − μ)ᵀ(x − μ) / N.

  G ≈ V diag(s) Vᵀ + s_tail (I − VVᵀ): a randomized range finder with
  ``power_iterations`` extra passes (Halko, Martinsson & Tropp 2011, alg.
  4.4), then the eigendecomposition of the ``[r, r]`` projection; s_tail is
  the mean of the remaining spectrum, (tr G − Σ s) / (D − r). Each pass is a
  scan over row blocks (``row_blocks.centred_gram_product``).

  Args:
    x: ``[N, D]`` rows.
    rank: r ≤ D.
    key: PRNG key of the Gaussian test matrix.
    power_iterations: extra passes of xᵀx that sharpen the subspace.
    mu: ``[D]`` subtracted from every row (default 0: G = xᵀx / N).
    block_rows: rows per block.

  Returns:
    ``(V [D, r] orthonormal, s [r] descending, s_tail scalar)``.
  """
  x = jnp.asarray(x)
  n, d = x.shape
  dtype = row_blocks.compute_dtype(x.dtype)
  mu = jnp.zeros(d, dtype) if mu is None else jnp.asarray(mu, dtype)
  q = jax.random.normal(key, (d, rank), dtype)
  for _ in range(power_iterations + 1):
    gq, _ = row_blocks.centred_gram_product(x, mu, q, block_rows=block_rows)
    q, _ = jnp.linalg.qr(gq)
  gq, sq = row_blocks.centred_gram_product(x, mu, q, block_rows=block_rows)
  s, e = jnp.linalg.eigh(q.T @ gq / n)
  s, e = s[::-1], e[:, ::-1]
  tail = (sq / n - jnp.sum(s)) / max(d - rank, 1)
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


def _shard_map(mesh, body, in_specs, out_specs):
  return jax.jit(
    jax.shard_map(
      body,
      mesh=mesh,
      in_specs=in_specs,
      out_specs=out_specs,
      check_vma=False,
    )
  )


ROWS = (P(shards.AXIS), P(shards.AXIS), P(shards.AXIS))  # x, y, count


@functools.lru_cache(maxsize=64)
def _prepare_program(mesh, *, rank, power_iterations, block):
  """μ, the preconditioner's eigen-pairs and N, from one split's rows."""

  def body(x, y, count, key):
    del y
    TRACES["prepare"] += 1
    total, n = row_blocks.column_sums(
      x, block_rows=block, num_valid=count[0], axis_name=shards.AXIS
    )
    mu = total / n
    v, s, tail = _gram_eigen(
      x,
      mu,
      n,
      rank=rank,
      key=key,
      power_iterations=power_iterations,
      block=block,
      num_valid=count[0],
      axis=shards.AXIS,
    )
    return mu, v, s, tail, n

  return _shard_map(mesh, body, (*ROWS, P()), P())


@functools.lru_cache(maxsize=64)
def _solve_program(mesh, *, loss, num_classes, memory_size, block, batched):
  """L-BFGS for one λ (``batched``: a ``[K]`` chunk of λ under ``vmap``).

  Arguments: the rows, ``_prepare_program``'s output, λ, the λ the memory's
  pairs were collected at, the start (W, b) of the centred rows, the
  ``LbfgsMemory`` (its pairs shifted here to the new λ; unused when
  batched), the ``row_blocks.PassSums`` at the start (the previous λ's last
  pass, or ``_pass_program``'s), Δ, tol, ftol and max_iter (arguments, so
  that other values reuse the program). Returns (W, b, L,
  iterations, ‖g‖, evaluations, memory, the ``PassSums`` at the
  solution).
  """

  def body(x, y, count, pre, lam, lam_prev, w0, b0, memory, sums0, *scalars):
    TRACES["solve"] += 1
    margin, tol, ftol, max_iter = scalars
    mu, v, s, tail, n = pre
    d = x.shape[1]
    dc = d * num_classes
    options = losses_lib.loss_options(loss, margin=margin)

    def sums_at(w, b):
      return row_blocks.pass_sums(
        w,
        b,
        x,
        y,
        mu,
        loss=loss,
        block_rows=block,
        num_valid=count[0],
        axis_name=shards.AXIS,
        **options,
      )

    rho: jax.Array | float
    rho_b: jax.Array | float
    if loss == "softmax":
      # Matched to the start's probabilities (row_blocks.pass_sums): ρ for W
      # (‖x_c‖²-weighted), ρ_b for b.
      per_class = max(num_classes - 1, 1)
      rho = sums0.spread_weighted / jnp.maximum(sums0.weight, 1e-30)
      rho = jnp.maximum(rho / per_class, 1e-6)
      rho_b = jnp.maximum(sums0.spread / n / per_class, 1e-6)
    else:
      rho = rho_b = CURVATURE[loss]

    def split(z):
      return z[:dc].reshape(d, num_classes), z[dc:]

    def value_and_grad_from(sums, w, lam):
      value = sums.loss / n + lam * jnp.sum(w * w)
      grad_w = sums.grad_w / n + 2 * lam * w
      return value, jnp.concatenate([grad_w.reshape(-1), sums.grad_b / n])

    def solve_one(lam, memory):
      top = 1 / (rho * s + 2 * lam)  # H^{-1} on span(V)
      rest = 1 / (rho * tail + 2 * lam)  # H^{-1} on its complement

      def precondition(z):
        gw, gb = split(z)
        pw = v @ ((top - rest)[:, None] * (v.T @ gw)) + rest * gw
        return jnp.concatenate([pw.reshape(-1), gb / rho_b])

      def value_and_grad(z):
        w, b = split(z)
        sums = sums_at(w, b)
        return (*value_and_grad_from(sums, w, lam), sums)

      result = lbfgs.minimize_lbfgs(
        None,
        jnp.concatenate([w0.reshape(-1), b0]),
        value_and_grad=value_and_grad,
        has_aux=True,
        initial=(*value_and_grad_from(sums0, w0, lam), sums0),
        precondition=precondition,
        memory=memory,
        max_iter=max_iter,
        tol=tol,
        ftol=ftol,
        solve_pair=not batched,
      )
      w, b = split(result.z)
      return (
        w,
        b,
        result.value,
        result.iterations,
        result.grad_norm,
        result.evaluations,
        result.memory,
        result.aux,
      )

    if batched:  # every λ from the same start, with no pairs
      empty = lbfgs.empty_memory(dc + num_classes, memory_size, w0.dtype)
      out = jax.vmap(solve_one, in_axes=(0, None))(lam, empty)
      return (*out[:6], memory, out[7])
    # The pairs were collected at λ_prev: f_new − f_old = (λ − λ_prev)ΣW²
    # adds 2(λ − λ_prev)s_W to each y (b is not regularized).
    mask = jnp.arange(dc + num_classes) < dc
    memory = lbfgs.shift_memory(memory, lam - lam_prev, mask)
    return solve_one(lam, memory)

  return _shard_map(mesh, body, (*ROWS,) + (P(),) * 11, P())


@functools.lru_cache(maxsize=64)
def _pass_program(mesh, *, loss, block):
  """``row_blocks.PassSums`` at (W, b) of the centred rows."""

  def body(x, y, count, mu, w, b, margin):
    return row_blocks.pass_sums(
      w,
      b,
      x,
      y,
      mu,
      loss=loss,
      block_rows=block,
      num_valid=count[0],
      axis_name=shards.AXIS,
      **losses_lib.loss_options(loss, margin=margin),
    )

  return _shard_map(mesh, body, (*ROWS,) + (P(),) * 4, P())


@functools.lru_cache(maxsize=64)
def _evaluate_program(mesh, *, block):
  """Correct predictions of K models ``[K]`` on one split."""

  def body(x, y, count, w, b):
    TRACES["evaluate"] += 1
    return row_blocks.correct_counts(
      w,
      b,
      x,
      y,
      block_rows=block,
      num_valid=count[0],
      axis_name=shards.AXIS,
    )

  return _shard_map(mesh, body, (*ROWS, P(), P()), P())


def _storage(x) -> np.ndarray | jax.Array:
  """X as stored when its dtype is one the passes read, else float32."""
  if not hasattr(x, "dtype"):
    x = np.asarray(x)
  if jnp.dtype(x.dtype).name in STORAGE_DTYPES:
    if (
      jnp.dtype(x.dtype) == jnp.float64
      and jax.dtypes.canonicalize_dtype(np.float64) != np.float64
    ):
      return x.astype(np.float32)
    return x
  return np.asarray(x, np.float32)


def _check_rows(x, y, what: str):
  if x.ndim != 2 or tuple(y.shape) != tuple(x.shape[:1]):
    raise checks.LinearJaxError(
      f"x_{what} {tuple(x.shape)} and y_{what} {tuple(y.shape)} must be "
      f"[N, D] and [N]; pass one label per row"
    )


def lambda_path(
  x_train: np.ndarray | jax.Array,
  y_train: ArrayLike,
  x_val: np.ndarray | jax.Array,
  y_val: ArrayLike,
  x_test: np.ndarray | jax.Array | None = None,
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
  sharded: bool = False,
  block_rows: int | None = None,
  init_params: dict | None = None,
  callback: Callable[[int, dict], None] | None = None,
  memory_budget: int | None = None,
  lambda_chunk: int | None = None,
) -> PathResult:
  """Solves L_k for every λ_k, selects on validation, evaluates on test.

  Args:
    x_train: ``[N, D]`` rows (preprocessed as for training); float32, or
      float16/bfloat16 storage read with float32 sums (float64 under
      ``jax_enable_x64``). A 64-byte aligned numpy array
      (``shards.aligned_empty``) is used without a copy on a CPU.
    y_train: ``[N]`` int labels in [0, C).
    x_val: ``[N_val, D]`` rows of the selection split.
    y_val: ``[N_val]`` their labels.
    x_test: ``[N_test, D]`` rows of the test split, or None.
    y_test: ``[N_test]`` their labels, or None.
    reg_strengths: λ ``[K]``, each ≥ 0 (λ = 0 is solved up to ``max_iter``
      when the data are separable); from scikit-learn's C by
      ``reg_strength_from_C``.
    loss: a name in ``linear_jax.LOSSES``; R(W) = ΣW² (``"l2"``).
    margin: Δ for the hinge losses.
    num_classes: C (default: max label + 1, over all processes' rows).
    max_iter: L-BFGS iterations at most, per λ.
    tol: stop once the gradient norm in preconditioned coordinates is below
      this.
    ftol: stop once an iteration lowers L by at most ftol·L, and the next
      is predicted to lower it no more (never below 2ε·L, the rounding of
      two float values of L: the default stops when float32 sees no
      further progress; ``lbfgs.minimize_lbfgs``).
    rank: r of the preconditioner (capped at D).
    memory_size: L-BFGS stored pairs.
    warm_start: solve the λ one after another from the largest, each
      started at the previous solution, instead of all at once from zero
      (``vmap``, in chunks that fit the memory budget, each chunk started at
      the previous chunk's last solution). None: warm starts on CPUs,
      ``vmap`` on accelerators. A vmapped batch runs until its slowest λ (the
      smallest) converges and multiplies every step's FLOPs by K, which a
      FLOP-bound CPU pays in full; warm starts cut the iterations of each λ
      and keep one [N, D] × [D, C] product per step, which leaves a GPU idle.
    row_space: solve in the span of the centred training rows (see
      ``row_space_basis``): r ≤ N features instead of D, exactly the same
      minimizers. None: when N < D (never with ``sharded``).
    seed: seeds the preconditioner's random test matrix.
    sharded: each process passes only its rows of every split
      (``shards.row_range``), ``jax.distributed`` initialized; sums run over
      all processes, and every process returns the same result.
    block_rows: rows per block of a pass (default: from the memory budget).
    init_params: ``{"W": [D, C], "b": [C]}`` where the first λ (or chunk)
      starts, e.g. the last solution of an interrupted path; default zero.
    callback: called as ``callback(k, row)`` once λ_k is solved and
      evaluated (in solving order), ``row`` a dict of ``reg_strength``,
      ``iterations``, ``evaluations``, ``objective``, ``grad_norm``, ``train_accuracy``,
      ``val_accuracy``, ``test_accuracy``, ``seconds`` and ``params``
      (``{"W": [D, C], "b": [C]}`` numpy).
    memory_budget: bytes the solver may use beyond the rows passed (default
      ``row_blocks.memory_budget()``); a path that needs more is refused.
    lambda_chunk: λ values solved at once under ``vmap`` (``warm_start``
      False); default as many as fit half the memory budget.

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
  x_train, x_val = _storage(x_train), _storage(x_val)
  y_train, y_val = np.asarray(y_train), np.asarray(y_val)
  _check_rows(x_train, y_train, "train")
  _check_rows(x_val, y_val, "val")
  has_test = x_test is not None
  if has_test:
    x_test, y_test = _storage(x_test), np.asarray(y_test)
    _check_rows(x_test, y_test, "test")
  for name, other in (("val", x_val), ("test", x_test)):
    if other is not None and other.shape[1] != x_train.shape[1]:
      raise checks.LinearJaxError(
        f"x_{name} has {other.shape[1]} features but x_train has "
        f"{x_train.shape[1]}; preprocess every split the same way"
      )
  mesh = shards.row_mesh(sharded)
  largest = int(y_train.max(initial=0))
  if sharded and mesh.devices.size > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    largest = int(
      np.max(multihost_utils.process_allgather(np.asarray([largest])))
    )
  if num_classes is None:
    num_classes = largest + 1
  for labels in (y_train, y_val) + ((y_test,) if has_test else ()):
    checks.check_label_range(labels, num_classes)
  dtype = row_blocks.compute_dtype(x_train.dtype)
  n_local, d = x_train.shape
  if row_space is None:
    row_space = n_local < d and not sharded
  x_solve = x_train
  if row_space:
    basis, mu_host = row_space_basis(np.asarray(x_train))
    x_solve = np.asarray(
      (np.asarray(x_train, np.float64) - mu_host) @ basis, dtype
    )
  rank = int(min(rank, x_solve.shape[1]))
  if warm_start is None:
    warm_start = jax.default_backend() == "cpu"
  k_total = len(lams)

  # Memory: the solver's state beside the rows (copied too on accelerators).
  budget = (
    row_blocks.memory_budget() if memory_budget is None else memory_budget
  )
  d_solve = x_solve.shape[1]
  on_host = mesh.devices.flat[0].platform == "cpu"
  copied = [x_solve, x_val] + ([x_test] if x_test is not None else [])
  data = (
    0
    if on_host
    else sum(row_blocks.feature_bytes(a.shape, a.dtype) for a in copied)
  )
  chunk = 1 if warm_start else k_total
  per_model = row_blocks.solver_bytes(
    d_solve,
    num_classes,
    num_models=1,
    memory_size=memory_size,
    rank=0,
    block_bytes=0,
    num_results=0,
  )
  fixed = row_blocks.solver_bytes(
    d_solve,
    num_classes,
    num_models=0,
    num_results=k_total,
    rank=rank,
    block_bytes=0,
  )
  if not warm_start:
    room = (budget - data - fixed) // 2 // max(per_model, 1)
    chunk = int(max(1, min(k_total, room, lambda_chunk or k_total)))
  if block_rows is None:
    work = row_blocks.CPU_BLOCK_BUDGET_BYTES
    if not on_host:
      work = max(budget - data - fixed - chunk * per_model, work)
    # The largest shard of any process: every process runs the same blocks.
    block_rows = row_blocks.block_rows(
      max(
        shards.local_counts(n_local, mesh)
        + shards.local_counts(len(y_val), mesh)
      ),
      d,
      num_classes,
      num_models=chunk,
      budget_bytes=work,
    )
  block = int(block_rows)
  need = (
    data
    + fixed
    + chunk * per_model
    + row_blocks.feature_bytes(
      (block, d + row_blocks.SCORE_TEMPORARIES * chunk * num_classes),
      np.float32,
    )
  )
  row_blocks.check_fits(
    need,
    f"the λ path (N = {n_local}, D = {d}, C = {num_classes}, "
    f"{k_total} λ values)",
    budget,
  )

  rows_solve = shards.put_rows(x_solve, y_train, mesh)
  # Train accuracy comes with the solver's last pass; these are evaluated.
  splits = {"val": shards.put_rows(x_val, y_val, mesh)}
  if has_test:
    splits["test"] = shards.put_rows(x_test, y_test, mesh)
  prepare = _prepare_program(mesh, rank=rank, power_iterations=1, block=block)
  pre = prepare(
    rows_solve.x, rows_solve.y, rows_solve.count, jax.random.key(seed)
  )
  if not bool(jnp.all(jnp.isfinite(pre[0]))) or not bool(
    jnp.all(jnp.isfinite(pre[2]))
  ):
    raise checks.LinearJaxError(
      "x_train holds NaN or Inf values (or values too large for float32 "
      "sums); clean or rescale the features"
    )
  mu = pre[0]
  mu64 = np.asarray(mu, np.float64)
  to_solver = functools.partial(jnp.asarray, dtype=dtype)
  if init_params is None:
    w0 = jnp.zeros((d_solve, num_classes), dtype)
    b0 = jnp.zeros((num_classes,), dtype)
  else:
    w_init = np.asarray(init_params["W"], np.float64)
    b_init = np.asarray(init_params["b"], np.float64)
    if row_space:
      # xW + b = (x − μ)B W_z + (b + μW) with W_z = BᵀW (W in the span).
      b_init = b_init + mu_host @ w_init
      w_init = basis.T @ w_init
    # The solver's rows are centred: (x − μ)W + (b + μW) = xW + b.
    w0, b0 = to_solver(w_init), to_solver(b_init + mu64 @ w_init)
  solve = _solve_program(
    mesh,
    loss=loss,
    num_classes=num_classes,
    memory_size=int(memory_size),
    block=block,
    batched=not warm_start,
  )
  evaluate = _evaluate_program(mesh, block=block)
  scalars = [
    to_solver(margin),
    to_solver(tol),
    to_solver(ftol),
    np.asarray(int(max_iter), np.int32),
  ]

  def uncentre(w, b):
    """Solver coordinates -> (W [k, D, C], b [k, C]) of the rows passed."""
    w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
    b = b - np.einsum("d,kdc->kc", mu64, w)  # (x − μ)W + b = xW + (b − μW)
    if row_space:
      # (x − μ)B W_z + b_z = xW + (b_z − μW) with W = B W_z.
      w = np.einsum("dr,krc->kdc", basis, w)
      b = b - np.einsum("d,kdc->kc", mu_host, w)
    return w, b

  def accuracies(w, b):
    w_dev, b_dev = to_solver(w), to_solver(b)
    out = {}
    for name, rows in splits.items():
      counts = evaluate(rows.x, rows.y, rows.count, w_dev, b_dev)
      out[name] = np.asarray(counts, np.float64) / max(rows.num_rows, 1)
    out.setdefault("test", np.full(w.shape[0], np.nan))
    return out

  order = np.argsort(-lams, kind="stable")  # largest λ first
  results = {
    key: np.zeros(k_total)
    for key in (
      "objective",
      "iterations",
      "evaluations",
      "grad_norm",
      "train",
      "val",
      "test",
      "seconds",
    )
  }
  # The K solutions, in the result's dtype (what ``solver_bytes`` counts).
  out_dtype = np.dtype(dtype)
  w_all = np.zeros((k_total, d, num_classes), out_dtype)
  b_all = np.zeros((k_total, num_classes), out_dtype)
  memory = lbfgs.empty_memory(
    d_solve * num_classes + num_classes, int(memory_size), dtype
  )
  lam_prev = to_solver(0.0)
  # Laid out as the solver's outputs are, so that feeding them back does not
  # compile the solver a second time.
  replicated = NamedSharding(mesh, P())
  w0, b0, memory, lam_prev = jax.device_put(
    (w0, b0, memory, lam_prev), replicated
  )
  sums0 = _pass_program(mesh, loss=loss, block=block)(
    rows_solve.x, rows_solve.y, rows_solve.count, mu, w0, b0, scalars[0]
  )
  for first in range(0, k_total, chunk):
    idx = order[first : first + chunk]
    start = time.perf_counter()
    # A short last chunk repeats its last λ: one shape, one compilation.
    padded = np.resize(lams[idx], chunk) if not warm_start else lams[idx[0]]
    lam = jax.device_put(to_solver(padded), replicated)
    w, b, value, it, gnorm, evals, memory, sums = solve(
      rows_solve.x,
      rows_solve.y,
      rows_solve.count,
      pre,
      lam,
      lam_prev,
      w0,
      b0,
      memory,
      sums0,
      *scalars,
    )
    # The next λ starts where this one ended, with that pass's sums.
    if warm_start:
      w0, b0, lam_prev, sums0 = w, b, lam, sums
      w, b, value, it, gnorm, evals, sums = jax.tree.map(
        lambda a: a[None], (w, b, value, it, gnorm, evals, sums)
      )
    else:
      last = len(idx) - 1
      w0, b0 = w[last], b[last]
      sums0 = jax.tree.map(lambda a, last=last: a[last], sums)
    w_out, b_out = uncentre(w, b)
    acc = accuracies(w_out, b_out)
    acc["train"] = np.asarray(sums.correct, np.float64) / rows_solve.num_rows
    seconds = (time.perf_counter() - start) / len(idx)
    w_all[idx], b_all[idx] = w_out[: len(idx)], b_out[: len(idx)]
    for j, k in enumerate(idx):
      row = {
        "reg_strength": float(lams[k]),
        "iterations": int(it[j]),
        "evaluations": int(evals[j]),
        "objective": float(value[j]),
        "grad_norm": float(gnorm[j]),
        "train_accuracy": float(acc["train"][j]),
        "val_accuracy": float(acc["val"][j]),
        "test_accuracy": float(acc["test"][j]),
        "seconds": seconds,
      }
      for key, name in (
        ("objective", "objective"),
        ("iterations", "iterations"),
        ("evaluations", "evaluations"),
        ("grad_norm", "grad_norm"),
        ("train", "train_accuracy"),
        ("val", "val_accuracy"),
        ("test", "test_accuracy"),
        ("seconds", "seconds"),
      ):
        results[key][k] = row[name]
      if callback is not None:
        callback(
          int(k),
          {**row, "params": {"W": w_out[j], "b": b_out[j]}},
        )
  return PathResult(
    reg_strengths=lams,
    params={"W": w_all, "b": b_all},
    objective=results["objective"].astype(out_dtype),
    iterations=results["iterations"].astype(np.int32),
    grad_norm=results["grad_norm"].astype(out_dtype),
    val_accuracy=results["val"],
    test_accuracy=results["test"] if has_test else np.full(k_total, np.nan),
    best=select(lams, results["val"]),
    train_accuracy=results["train"],
    seconds=results["seconds"],
    evaluations=results["evaluations"].astype(np.int32),
  )


def select(reg_strengths: ArrayLike, val_accuracy: ArrayLike) -> int:
  """Index of the highest validation accuracy; ties go to the larger λ."""
  lams = np.asarray(reg_strengths)
  acc = np.asarray(val_accuracy)
  order = np.argsort(-lams, kind="stable")  # largest λ first
  return int(order[np.argmax(acc[order])])
