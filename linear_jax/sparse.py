"""Sparse rows (CSR) on the host and the device, and s = xW + b on them.

Host side: ``scipy.sparse.csr_matrix`` float32 rows, canonical (sorted,
unique column indices per row), with int32 indices and row pointers where
the counts fit and int64 where the feature count or the non-zero count
needs them (``index_dtype``). Preprocessing keeps them sparse: per-feature
scaling and L2 row normalization; no mean subtraction (it would densify;
with an unregularized bias b the centred and the uncentred problems have
the same minimizer, since (x − μ)W + b = xW + (b − μW)).

Device side: ``CSRRows``, the same three arrays (values, column indices,
row pointers) as a pytree with its shape and its longest row K static.
Training reads rows through ``CSRRows.rows(idx)``: each of the B rows is a
window of K consecutive entries starting at its row pointer (one
``dynamic_slice`` per row, vmapped: a gather of contiguous slices, which
XLA:CPU runs several times faster than one gather per entry; BENCHMARKS.md
compares the layouts), masked to the row's length. The result, a
``RowBlock`` (values ``[B, K]``, columns ``[B, K]``), is an ELL block with
no padding stored: the padding exists only per minibatch. Then

    s_i = Σ_k v_ik W[c_ik] + b                    (a gather of W rows)
    ∂L/∂W = Σ_ik v_ik ∂L/∂s_i at row c_ik         (a scatter-add, autodiff)

so every loss, regularizer and optimizer of the dense path works unchanged:
``linear_jax.scores.linear_scores`` dispatches on ``RowBlock``. Each row
costs K (the longest row), not its own length: data whose longest row is
far above the mean pay for it in time (not in memory).

Positions (row pointers) are int32 on the device when the non-zero count is
below 2³¹; above it they need ``jax_enable_x64`` (refused in one line
otherwise). Column indices are int32 (D < 2³¹, checked).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from linear_jax.checks import LinearJaxError

INT32_MAX = int(np.iinfo(np.int32).max)
#: Rows per block when scanning over all rows (evaluation, full batch).
BLOCK_ROWS = 4096
#: Entries per chunk of host-side passes over the values (bounds temporaries).
CHUNK_ENTRIES = 1 << 22
#: Densify sparse data when the dense float32 matrix is at most this many
#: times the CSR bytes (and fits the budget); see ``should_densify``.
DENSIFY_RATIO = 4.0


# ------------------------------------------------------------------ host


def is_sparse(x) -> bool:
  """Whether ``x`` is a ``scipy.sparse`` matrix or array."""
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  return scipy.sparse.issparse(x)


def index_dtype(*counts: int):
  """int32 if every count fits in it (≤ 2³¹ − 1), else int64."""
  return np.int32 if max(counts, default=0) <= INT32_MAX else np.int64


def csr_bytes(x) -> int:
  """Bytes of a CSR matrix's three arrays."""
  return int(x.data.nbytes + x.indices.nbytes + x.indptr.nbytes)


def as_csr(x, what: str):
  """``x`` as canonical float32 CSR (``scipy.sparse.csr_matrix``), checked.

  Args:
    x: any ``scipy.sparse`` matrix or array, ``[N, D]``.
    what: how errors name it (e.g. ``"x_train"``).

  Returns:
    CSR float32 with sorted column indices, int32 or int64 indices
    (``index_dtype`` of D and the non-zero count). No copy when ``x``
    already is such a matrix.

  Raises:
    LinearJaxError: indices out of range or negative, duplicated entries,
      or non-numeric values (one line each).
  """
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  if x.ndim != 2:
    raise LinearJaxError(
      f"{what} is a {x.ndim}-D sparse array; sparse features must be [N, D]"
    )
  if x.dtype == np.bool_ or not (
    np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
  ):
    raise LinearJaxError(
      f"{what} has dtype {x.dtype}; store sparse features as floats or ints"
    )
  if not isinstance(x, scipy.sparse.csr_matrix):
    x = scipy.sparse.csr_matrix(x)
  try:
    x.check_format(full_check=True)
  except ValueError as e:
    raise LinearJaxError(
      f"{what} is not a valid CSR matrix ({' '.join(str(e).split())}); "
      "column indices must lie in [0, D)"
    ) from None
  if not x.has_sorted_indices:
    x = x.sorted_indices()
  first = first_duplicate(x)  # before astype, which would sum duplicates
  if first is not None:
    row, column = first
    raise LinearJaxError(
      f"{what} stores column {column} of row {row} twice; sum duplicates "
      "first (x.sum_duplicates()) or write each feature once"
    )
  if x.dtype != np.float32:
    x = x.astype(np.float32)
  return x


def first_duplicate(x) -> tuple[int, int] | None:
  """``(row, column)`` of the first column stored twice in a row of CSR
  ``x`` with sorted indices, or None.
  """
  starts = np.asarray(x.indptr[1:-1])
  starts = starts[(starts > 0) & (starts < x.nnz)]
  for lo in range(0, max(x.nnz - 1, 0), CHUNK_ENTRIES):
    hi = min(lo + CHUNK_ENTRIES, x.nnz - 1)
    # same[i]: entry lo + i + 1 repeats entry lo + i, in one row.
    same = x.indices[lo + 1 : hi + 1] == x.indices[lo:hi]
    inside = starts[(starts > lo) & (starts <= hi)]
    same[inside - lo - 1] = False  # a new row starts at entry `inside`
    hits = np.flatnonzero(same)
    if len(hits):
      i = lo + int(hits[0]) + 1
      row = int(np.searchsorted(x.indptr, i, side="right") - 1)
      return row, int(x.indices[i])
  return None


def check_finite(x, split: str) -> None:
  """Raises if the stored values of sparse ``x`` hold NaN/Inf."""
  bad = ~np.isfinite(x.data)
  if bad.any():
    first = int(np.searchsorted(x.indptr, np.flatnonzero(bad)[0], "right") - 1)
    raise LinearJaxError(
      f"x_{split} holds {int(bad.sum())} NaN/Inf values (first: example "
      f"{first}); drop or repair those examples before loading"
    )


def _with_data(x, data):
  """A CSR matrix with ``x``'s structure (shared, not copied) and ``data``."""
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  out = scipy.sparse.csr_matrix(
    (data, x.indices, x.indptr), shape=x.shape, copy=False
  )
  out.has_sorted_indices = x.has_sorted_indices
  return out


def row_norms(x) -> np.ndarray:
  """‖x_i‖₂ of each row, float64 ``[N]`` (in chunks of rows)."""
  n = x.shape[0]
  out = np.zeros(n)
  rows_per_chunk = max(1, CHUNK_ENTRIES // max(1, x.nnz // max(n, 1)))
  for r0 in range(0, n, rows_per_chunk):
    r1 = min(r0 + rows_per_chunk, n)
    lo, hi = int(x.indptr[r0]), int(x.indptr[r1])
    lengths = np.diff(x.indptr[r0 : r1 + 1])
    rows = np.repeat(np.arange(r1 - r0), lengths)
    out[r0:r1] = np.bincount(
      rows,
      weights=np.square(x.data[lo:hi], dtype=np.float64),
      minlength=r1 - r0,
    )
  return np.sqrt(out)


def normalize_rows(x):
  """Each row divided by its L2 norm (all-zero rows stay zero).

  Returns a CSR matrix sharing ``x``'s indices (only the values are new).
  """
  norms = row_norms(x)
  norms[norms == 0] = 1.0
  inverse = (1.0 / norms).astype(np.float32)
  data = np.empty_like(x.data)
  for lo in range(0, x.nnz, CHUNK_ENTRIES):
    hi = min(lo + CHUNK_ENTRIES, x.nnz)
    rows = np.searchsorted(x.indptr, np.arange(lo, hi), side="right") - 1
    np.multiply(x.data[lo:hi], inverse[rows], out=data[lo:hi])
  return _with_data(x, data)


def scale_columns(x, scale: np.ndarray):
  """Column j divided by ``scale[j]`` (zeros stay zeros).

  Returns a CSR matrix sharing ``x``'s indices (only the values are new).
  """
  inverse = (1.0 / np.asarray(scale, np.float64)).astype(np.float32)
  data = np.empty_like(x.data)
  for lo in range(0, x.nnz, CHUNK_ENTRIES):
    hi = min(lo + CHUNK_ENTRIES, x.nnz)
    np.multiply(x.data[lo:hi], inverse[x.indices[lo:hi]], out=data[lo:hi])
  return _with_data(x, data)


def column_moments(x) -> tuple[np.ndarray, np.ndarray]:
  """``(Σ_i x_ij, Σ_i x_ij²)`` of each column, float64 ``[D]`` each."""
  d = x.shape[1]
  total, sq = np.zeros(d), np.zeros(d)
  for lo in range(0, x.nnz, CHUNK_ENTRIES):
    hi = min(lo + CHUNK_ENTRIES, x.nnz)
    values = x.data[lo:hi].astype(np.float64)
    columns = x.indices[lo:hi]
    total += np.bincount(columns, weights=values, minlength=d)
    sq += np.bincount(columns, weights=values * values, minlength=d)
  return total, sq


def column_mean(x) -> np.ndarray:
  """μ_j of each column, implicit zeros included (float64 ``[D]``)."""
  return column_moments(x)[0] / max(x.shape[0], 1)


def column_std(x) -> np.ndarray:
  """σ_j of each column, implicit zeros included (float64 ``[D]``)."""
  n = max(x.shape[0], 1)
  total, sq = column_moments(x)
  mean = total / n
  return np.sqrt(np.maximum(sq / n - mean * mean, 0.0))


def with_width(x, num_features: int, what: str):
  """``x`` with ``num_features`` columns: fewer are padded with zero
  columns (no copy of the entries); more are refused.
  """
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  if x.shape[1] > num_features:
    raise LinearJaxError(
      f"{what} has {x.shape[1]} features but the model was trained on "
      f"{num_features}; pass inputs in the training feature space (at most "
      f"{num_features} features)"
    )
  if x.shape[1] == num_features:
    return x
  return scipy.sparse.csr_matrix(
    (x.data, x.indices, x.indptr), shape=(x.shape[0], num_features)
  )


def add_ones_column(x):
  """[x, 1] ``[N, D + 1]`` (the bias trick), still CSR."""
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  ones = scipy.sparse.csr_matrix(np.ones((x.shape[0], 1), np.float32))
  return scipy.sparse.hstack([x, ones], format="csr", dtype=np.float32)


def should_densify(
  num_rows: int, num_features: int, nnz: int, budget_bytes: int
) -> bool:
  """The densify rule: dense float32 when that is narrow enough to pay.

  Dense rows are used when they take at most ``DENSIFY_RATIO`` × the CSR
  bytes (4 bytes per dense entry against 8 per stored one: a density above
  ~1/8) and fit ``budget_bytes``. There a dense epoch is 2-3× faster than a
  sparse one (a matmul against a gather and a scatter-add per entry;
  ``benchmarks/sparse.py --densify``) while memory grows at most 4-fold;
  sparser data gain little from dense rows and pay for them in memory.
  """
  dense = num_rows * num_features * 4
  sparse_bytes = nnz * 8 + (num_rows + 1) * 4
  return dense <= budget_bytes and dense <= DENSIFY_RATIO * sparse_bytes


# ---------------------------------------------------------------- device


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False)
class RowBlock:
  """B sparse rows as an ELL block (each row padded to the longest, K).

  Attributes:
    values: ``[B, K]`` float (0 in the padding).
    columns: ``[B, K]`` int32 column indices (any valid column in the
      padding; their values are 0).
    num_features: D (static).
  """

  values: jax.Array
  columns: jax.Array
  num_features: int

  @property
  def shape(self) -> tuple:
    """``(B, D)``."""
    return (self.values.shape[0], self.num_features)

  @property
  def dtype(self):
    """The values' dtype."""
    return self.values.dtype

  @property
  def ndim(self) -> int:
    """2."""
    return 2

  def tree_flatten(self):
    """Pytree protocol: arrays are leaves, D is static."""
    return (self.values, self.columns), self.num_features

  @classmethod
  def tree_unflatten(cls, num_features, leaves):
    """Pytree protocol."""
    values, columns = leaves
    return cls(values, columns, num_features)


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False)
class CSRRows:
  """CSR rows on the device (module docstring).

  Attributes:
    data: ``[nnz]`` float values.
    indices: ``[nnz]`` int32 column indices.
    indptr: ``[N + 1]`` int32 (int64 under ``jax_enable_x64`` when
      nnz ≥ 2³¹) row pointers.
    num_features: D (static).
    width: K, the longest row's non-zero count (static, ≥ 1).
  """

  data: jax.Array
  indices: jax.Array
  indptr: jax.Array
  num_features: int
  width: int

  @property
  def shape(self) -> tuple:
    """``(N, D)``."""
    return (self.indptr.shape[0] - 1, self.num_features)

  @property
  def dtype(self):
    """The values' dtype."""
    return self.data.dtype

  @property
  def ndim(self) -> int:
    """2."""
    return 2

  def tree_flatten(self):
    """Pytree protocol: arrays are leaves, D and K are static."""
    return (self.data, self.indices, self.indptr), (
      self.num_features,
      self.width,
    )

  @classmethod
  def tree_unflatten(cls, aux, leaves):
    """Pytree protocol."""
    return cls(*leaves, *aux)

  def rows(self, idx: jax.Array) -> RowBlock:
    """Rows ``idx [B]`` as a ``RowBlock`` ``[B, K]`` (windows, masked).

    A window of K entries from the row pointer; near the end of the arrays
    ``dynamic_slice`` moves it back to stay in bounds, so the row's entries
    start at offset ``start − window start`` inside it.
    """
    k = self.width
    start = self.indptr[idx]
    length = (self.indptr[idx + 1] - start).astype(jnp.int32)
    window = jnp.minimum(start, self.data.shape[0] - k)
    take = jax.vmap(
      lambda a, s: jax.lax.dynamic_slice(a, (s,), (k,)), in_axes=(None, 0)
    )
    offset = (start - window).astype(jnp.int32)[:, None]
    j = jnp.arange(k, dtype=jnp.int32)[None, :]
    valid = (j >= offset) & (j < offset + length[:, None])
    values = jnp.where(valid, take(self.data, window), 0)
    return RowBlock(values, take(self.indices, window), self.num_features)

  def __getitem__(self, idx) -> RowBlock:
    """``x[idx]`` for integer row indices ``[B]``: ``rows(idx)``."""
    return self.rows(jnp.asarray(idx))

  def all_rows(self) -> RowBlock:
    """Every row as one ``RowBlock`` ``[N, K]`` (small data, full batch)."""
    return self.rows(jnp.arange(self.shape[0], dtype=jnp.int32))


def to_device(x, dtype=np.float32, put=jax.device_put) -> CSRRows:
  """Host CSR ``[N, D]`` -> ``CSRRows`` on the device.

  Args:
    x: canonical CSR (``as_csr``).
    dtype: of the values (float32; float64 under ``jax_enable_x64``).
    put: host array -> device array (default ``jax.device_put``; the sweep
      passes its replicated placement).

  Raises:
    LinearJaxError: D ≥ 2³¹, or nnz ≥ 2³¹ without ``jax_enable_x64``.
  """
  n, d = x.shape
  if d > INT32_MAX:
    raise LinearJaxError(
      f"{d} features exceed the 2^31 column indices the device layout "
      "holds; hash or select features first"
    )
  wide = x.nnz > INT32_MAX
  if wide and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
    raise LinearJaxError(
      f"{x.nnz} non-zeros need 64-bit row pointers on the device; set "
      "JAX_ENABLE_X64=1 (jax_enable_x64) or use fewer rows"
    )
  width = max_row_nnz(x)
  data, indices = x.data, x.indices
  if x.nnz < width:  # fewer entries than one window: pad (tiny data only)
    data = np.concatenate([data, np.zeros(width - x.nnz, data.dtype)])
    indices = np.concatenate([indices, np.zeros(width - x.nnz, np.int32)])
  return CSRRows(
    put(np.asarray(data, dtype)),
    put(np.asarray(indices, np.int32)),
    put(np.asarray(x.indptr, np.int64 if wide else np.int32)),
    int(d),
    width,
  )


def host_arrays(x) -> tuple:
  """The arrays that hold host rows: ``(data, indices, indptr)`` of sparse
  ``x``, else ``(x,)`` (e.g. to fingerprint data).
  """
  if is_sparse(x):
    x = as_csr(x, "x")
    return (x.data, x.indices, x.indptr)
  return (x,)


def max_row_nnz(x) -> int:
  """K, the longest row's non-zero count of host CSR ``x`` (≥ 1)."""
  return max(int(np.diff(x.indptr).max(initial=0)), 1)


def device_rows(x, dtype=np.float32):
  """Host rows on the device: ``scipy.sparse`` -> ``CSRRows``, arrays ->
  ``jax.Array`` (for evaluation; training uses ``DeviceData.put``).
  """
  if is_sparse(x):
    return to_device(as_csr(x, "x"), dtype)
  return jnp.asarray(x)


def scores(params: dict, block: RowBlock) -> jax.Array:
  """Scores s = xW + b of the rows of ``block``: ``[B, C]``.

  Σ_k v_ik W[c_ik]: a gather of B·K rows of W ``[D, C]`` and a sum over k
  (autodiff's transpose is the scatter-add of the gradient).
  """
  w = jnp.asarray(params["W"])  # host (numpy) weights are gathered too
  s = jnp.einsum("bk,bkc->bc", block.values.astype(w.dtype), w[block.columns])
  if "b" in params:
    s = s + params["b"]
  return s


def block_starts(num_rows: int, block_rows: int) -> np.ndarray:
  """First row of each block of ``block_rows`` (the last may run past N)."""
  return np.arange(0, max(num_rows, 1), block_rows, dtype=np.int32)


def block_indices(start, block_rows: int, num_rows: int):
  """Rows ``start .. start + block_rows`` clamped to N − 1, and a mask of
  the real ones ``[block_rows]``.
  """
  rows = start + jnp.arange(block_rows, dtype=jnp.int32)
  return jnp.minimum(rows, num_rows - 1), rows < num_rows


def map_scores(
  params: dict, x: CSRRows, *, block_rows: int = BLOCK_ROWS
) -> jax.Array:
  """Scores of every row ``[N, C]``, computed in blocks of ``block_rows``
  rows (the ``[B, K, C]`` gather never spans all rows).
  """
  n = x.shape[0]
  block_rows = int(min(block_rows, max(n, 1)))
  starts = jnp.asarray(block_starts(n, block_rows))

  def one(start):
    rows, _ = block_indices(start, block_rows, n)
    return scores(params, x.rows(rows))

  out = jax.lax.map(one, starts)
  return out.reshape(-1, out.shape[-1])[:n]


def count_correct(
  params: dict, x: CSRRows, y: jax.Array, *, block_rows: int = BLOCK_ROWS
) -> jax.Array:
  """How many rows have argmax_j s_j == y (a scan over row blocks)."""
  n = x.shape[0]
  block_rows = int(min(block_rows, max(n, 1)))

  def body(total, start):
    rows, real = block_indices(start, block_rows, n)
    hit = jnp.argmax(scores(params, x.rows(rows)), axis=-1) == y[rows]
    return total + jnp.sum(hit & real, dtype=jnp.int32), None

  total, _ = jax.lax.scan(
    body, jnp.zeros((), jnp.int32), jnp.asarray(block_starts(n, block_rows))
  )
  return total


def accuracy(
  params: dict, x: CSRRows, y: jax.Array, *, block_rows: int = BLOCK_ROWS
) -> jax.Array:
  """Fraction of rows with argmax_j s_j == y (blocks; no ``[N, C]``)."""
  n = x.shape[0]
  return count_correct(params, x, y, block_rows=block_rows) / max(n, 1)


def data_term_sums(
  params: dict,
  x: CSRRows,
  y: jax.Array,
  *,
  loss: str,
  shift: jax.Array | None = None,
  block_rows: int = BLOCK_ROWS,
  **loss_options,
):
  """``(Σ_i L_i, ∂(Σ_i L_i)/∂params)`` over sparse rows, in row blocks.

  With s_i = x_i W + b (or (x_i − μ)W + b with ``shift`` μ ``[D]``: the
  rows are centred implicitly, s = xW − μW + b, never formed) and
  dS_i = ∂L_i/∂s_i (``linear_jax.gradients.SCORE_GRADIENTS``):
  ∂/∂W = Σ_i x_iᵀ dS_i (− μᵀ Σ_i dS_i), ∂/∂b = Σ_i dS_i. A scan over row
  blocks accumulates the sums; the x_iᵀ dS_i part is the transpose of the
  block's gather of W (a scatter-add), so no ``[N, C]`` scores and no
  ``[N, K, C]`` gather exist at once.

  Args:
    params: ``{"W": [D, C], "b": [C]}``.
    x: ``CSRRows`` ``[N, D]``.
    y: ``[N]`` int labels.
    loss: a name in ``linear_jax.LOSSES`` (static).
    shift: optional μ ``[D]`` for implicit centring.
    block_rows: rows per block.
    **loss_options: e.g. ``margin``.

  Returns:
    ``(Σ L_i, {"W": [D, C], "b": [C]})``.
  """
  from linear_jax import gradients  # pylint: disable=g-import-not-at-top
  from linear_jax import losses as losses_lib  # pylint: disable=g-import-not-at-top

  loss_fn = losses_lib.get_loss(loss)
  score_grad = gradients.SCORE_GRADIENTS[loss]
  n = x.shape[0]
  block_rows = int(min(block_rows, max(n, 1)))
  w, b = params["W"], params["b"]
  offset = b if shift is None else b - shift @ w

  def body(carry, start):
    total, gw, gb = carry
    rows, real = block_indices(start, block_rows, n)
    block = x.rows(rows)
    s, transpose = jax.vjp(lambda v: scores({"W": v}, block), w)
    s = s + offset
    yb = y[rows]
    per_example = jnp.where(real, loss_fn(s, yb, **loss_options), 0)
    ds = jnp.where(real[:, None], score_grad(s, yb, **loss_options), 0)
    (gw_block,) = transpose(ds)
    return (total + jnp.sum(per_example), gw + gw_block, gb + ds.sum(0)), None

  init = (jnp.zeros((), w.dtype), jnp.zeros_like(w), jnp.zeros_like(b))
  (total, gw, gb), _ = jax.lax.scan(
    body, init, jnp.asarray(block_starts(n, block_rows))
  )
  if shift is not None:
    gw = gw - jnp.outer(shift, gb)
  return total, {"W": gw, "b": gb}


@functools.partial(jax.jit, static_argnames=("block_rows",))
def jit_map_scores(params, x, *, block_rows: int = BLOCK_ROWS):
  """``map_scores``, jitted (one compile per shape)."""
  return map_scores(params, x, block_rows=block_rows)


@functools.partial(jax.jit, static_argnames=("block_rows",))
def jit_accuracy(params, x, y, *, block_rows: int = BLOCK_ROWS):
  """``accuracy``, jitted (one compile per shape)."""
  return accuracy(params, x, y, block_rows=block_rows)


__all__ = [
  "accuracy",
  "add_ones_column",
  "as_csr",
  "block_indices",
  "block_starts",
  "check_finite",
  "column_mean",
  "column_moments",
  "column_std",
  "count_correct",
  "csr_bytes",
  "data_term_sums",
  "first_duplicate",
  "CSRRows",
  "device_rows",
  "host_arrays",
  "max_row_nnz",
  "index_dtype",
  "is_sparse",
  "jit_accuracy",
  "jit_map_scores",
  "map_scores",
  "normalize_rows",
  "row_norms",
  "RowBlock",
  "scale_columns",
  "scores",
  "should_densify",
  "to_device",
  "with_width",
]
