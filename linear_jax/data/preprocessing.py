"""Preprocessing fitted on the training split only, and applied to every split.

x ↦ [(flatten(x) − μ) / σ, 1]: ``μ [D]`` is the per-feature mean of the
training rows (the lecture's "subtract the mean image"), ``σ [D]`` their
per-feature standard deviation (only with ``standardize``; a constant feature
gets σ = 1), and the ones column is the bias trick's data side (only with
``bias_column``). Validation and test rows never enter μ or σ: call
``fit_stats`` on the training rows after the validation split is carved out
(``linear_jax.data.dataset.from_raw`` does), then ``stats.apply`` everywhere.

Sparse rows (``scipy.sparse``) stay sparse: x ↦ [x / σ, 1], never centred
(subtracting μ would fill every zero; with an unregularized bias it changes
no minimizer, see ``linear_jax.sparse``), σ the per-feature standard
deviation with the implicit zeros counted. ``normalize_rows`` (the TF-IDF
habit, dense or sparse) divides each row by its L2 norm after the other
steps, before the ones column: ‖x_i‖₂ = 1 (all-zero rows stay zero).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from linear_jax import sparse
from linear_jax.checks import FLOAT32_MAX, LinearJaxError

#: Bytes of the float64 temporaries of one chunk of rows in ``check_finite``
#: and ``fit_stats`` (the temporary memory beyond the arrays themselves).
CHUNK_BYTES = 8 << 20
_APPLY_ROWS = 512


def _flatten(x) -> np.ndarray:
  """``[N, ...]`` -> ``[N, D]`` (also for N = 0)."""
  x = np.asarray(x)
  if x.ndim == 0:
    raise LinearJaxError(
      f"examples must be an array [N, ...], got a scalar {x!r}; pass one "
      "example per row"
    )
  return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))


def check_finite(
  x: np.ndarray, split: str, *, name: str | None = None, first_row: int = 0
) -> None:
  """Raises unless the features of ``split`` are numbers that float32 holds.

  Training computes in float32, so a float64 value beyond its range
  (|x| > 3.4e38) would become inf there: it is refused here, naming the
  feature (column of the flattened ``[N, D]`` rows), the example and the
  value, as NaN and Inf are. Rows are checked in chunks (no ``[N, D]``
  temporary).

  Args:
    x: features ``[N, ...]``.
    split: the split's name (``train``, ``test``, ``inputs``).
    name: how the message names ``x`` (default ``x_<split>``).
    first_row: the index of ``x``'s first row in its split (a process's
      shard of the rows), so the message names the example in the split.
  """
  if sparse.is_sparse(x):
    sparse.check_finite(x, split)
    return
  name = name or f"x_{split}"
  x = np.asarray(x)
  if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
    raise LinearJaxError(
      f"{name} must be numeric, got dtype {x.dtype}; convert the features "
      "to numbers"
    )
  if not np.issubdtype(x.dtype, np.inexact):
    return  # integers up to 2**64 are finite in float32
  x = _flatten(x)
  wide = x.dtype.itemsize > 4 and not np.iscomplexobj(x)
  # kind -> [values, examples, first (example, feature) or None]
  found: dict[str, list[Any]] = {
    "NaN/Inf": [0, 0, None],
    "beyond float32": [0, 0, None],
  }
  step = _chunk_rows(x)
  for start in range(0, x.shape[0], step):
    chunk = x[start : start + step]
    masks = {"NaN/Inf": ~np.isfinite(chunk)}
    if wide:
      with np.errstate(invalid="ignore"):
        masks["beyond float32"] = np.abs(chunk) > FLOAT32_MAX
    for kind, bad in masks.items():
      if bad.any():
        count = found[kind]
        count[0] += int(bad.sum())
        count[1] += int(bad.any(axis=1).sum())
        if count[2] is None:
          row, column = np.argwhere(bad)[0]
          count[2] = (start + int(row), int(column))
  for kind, (values, rows, first) in found.items():
    if first is None:
      continue
    row, column = first
    if kind == "NaN/Inf":
      raise LinearJaxError(
        f"{name} holds {values} NaN/Inf values in {rows} examples (first: "
        f"feature {column} of example {first_row + row}, {x[row, column]}); "
        "drop or repair those examples before loading"
      )
    raise LinearJaxError(
      f"{name} holds {values} values beyond ±{FLOAT32_MAX:.3g}, the "
      f"float32 range that training computes in, in {rows} examples "
      f"(first: feature {column} of example {first_row + row}, "
      f"{x[row, column]:.6g}); "
      "rescale that feature or drop those examples"
    )


def _chunk_rows(x: np.ndarray) -> int:
  """Rows per chunk: ``CHUNK_BYTES`` of float64 ``[rows, D]``."""
  return max(1, CHUNK_BYTES // (8 * max(x.shape[1], 1)))


def _take(x: np.ndarray, rows, start: int, stop: int) -> np.ndarray:
  """Rows ``start:stop`` of ``x`` (a view), or of ``x[rows]`` (a gathered
  copy of at most ``stop − start`` rows).
  """
  return x[start:stop] if rows is None else x[rows[start:stop]]


def _check_cast(body: np.ndarray, chunk: np.ndarray, examples) -> None:
  """Raises if preprocessed float32 rows ``body`` (of the raw ``chunk``)
  overflowed: (x − μ) / σ can leave float32 where x did not. ``examples``:
  the example number of the first row, or of each row.
  """
  bad = ~np.isfinite(body)
  if bad.any():
    row, column = (int(i) for i in np.argwhere(bad)[0])
    example = examples + row if np.ndim(examples) == 0 else examples[row]
    raise LinearJaxError(
      f"feature {column} of example {example} ({chunk[row, column]:.6g}) "
      f"becomes {body[row, column]} in float32 after preprocessing "
      "((x − μ) / σ); rescale that feature before loading"
    )


@dataclasses.dataclass(frozen=True, eq=False)
class PreprocessStats:
  """What was fitted on the training split; ``apply`` maps raw examples.

  Attributes:
    num_features: D, features per raw example after flattening.
    mean: μ, float32 ``[D]``, or None (no mean subtraction).
    scale: σ, float32 ``[D]`` with zeros replaced by 1, or None (no
      standardization).
    bias_column: whether ``apply`` appends a ones column (D + 1 outputs).
    normalize_rows: whether ``apply`` scales each row to unit L2 norm
      (before the ones column).
  """

  num_features: int
  mean: np.ndarray | None = None
  scale: np.ndarray | None = None
  bias_column: bool = False
  normalize_rows: bool = False

  def apply(self, x_raw, rows=None) -> np.ndarray:
    """Raw examples ``[N, ...]`` (any numeric dtype) -> float32 ``[N, D(+1)]``.

    ``rows`` (int ``[M]``): map only the examples ``x_raw[rows]``, in that
    order (``[M, D(+1)]``), gathered a chunk at a time, so that a split is
    never copied before it is mapped.

    ``scipy.sparse`` ``[N, D]`` -> CSR float32 ``[N, D(+1)]`` (no mean
    subtraction: see the module docstring).
    """
    if sparse.is_sparse(x_raw):
      return self._apply_sparse(x_raw if rows is None else x_raw[rows])
    x = _flatten(x_raw)
    n = x.shape[0] if rows is None else len(rows)
    d = self.num_features
    if x.shape[1] != d:
      raise LinearJaxError(
        f"examples have {x.shape[1]} features after flattening but the "
        f"stats were fitted on {d}; pass examples shaped like the training "
        "set"
      )
    out = np.empty((n, d + int(self.bias_column)), np.float32)
    # Row chunks that stay in cache: ~3x faster than whole-array passes.
    # An overflow is reported by ``_check_cast``, not warned about.
    with np.errstate(over="ignore"):
      for start in range(0, n, _APPLY_ROWS):
        chunk = _take(x, rows, start, start + _APPLY_ROWS)
        body = out[start : start + _APPLY_ROWS, :d]
        if self.mean is not None:
          np.subtract(chunk, self.mean, out=body, dtype=np.float32)
        else:
          body[...] = chunk
        if self.scale is not None:
          np.divide(body, self.scale, out=body)
        if self.normalize_rows:
          norms = np.linalg.norm(body, axis=1, keepdims=True)
          np.divide(body, np.where(norms > 0, norms, 1), out=body)
        _check_cast(body, chunk, start if rows is None else rows[start:])
    if self.bias_column:
      out[:, d] = 1.0
    return out

  def _apply_sparse(self, x_raw):
    x = sparse.as_csr(x_raw, "examples")
    if x.shape[1] != self.num_features:
      raise LinearJaxError(
        f"examples have {x.shape[1]} features but the stats were fitted on "
        f"{self.num_features}; pass examples of the training feature space"
      )
    if self.scale is not None:
      x = sparse.scale_columns(x, self.scale)
    if self.normalize_rows:
      x = sparse.normalize_rows(x)
    if self.bias_column:
      x = sparse.add_ones_column(x)
    return x

  def apply_jax(self, x_raw):
    """``apply`` as a pure, jittable JAX function: the same float32 values
    elementwise, (x − μ) / σ (+ ones column).
    """
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    x = jnp.reshape(jnp.asarray(x_raw), (jnp.shape(x_raw)[0], -1))
    if x.shape[1] != self.num_features:
      raise LinearJaxError(
        f"inputs have {x.shape[1]} features after flattening but the "
        f"training split had {self.num_features}; pass examples shaped "
        "like the training set"
      )
    x = x.astype(jnp.float32)
    if self.mean is not None:
      x = x - self.mean
    if self.scale is not None:
      x = x / self.scale
    if self.normalize_rows:
      norms = jnp.linalg.norm(x, axis=1, keepdims=True)
      x = x / jnp.where(norms > 0, norms, 1)
    if self.bias_column:
      x = jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
    return x

  def to_dict(self) -> dict[str, np.ndarray]:
    """Plain numpy values (``np.savez``-friendly); absent keys mean None."""
    out = {
      "num_features": np.asarray(self.num_features, np.int64),
      "bias_column": np.asarray(self.bias_column),
    }
    if self.normalize_rows:
      out["normalize_rows"] = np.asarray(True)
    if self.mean is not None:
      out["mean"] = np.asarray(self.mean, np.float32)
    if self.scale is not None:
      out["scale"] = np.asarray(self.scale, np.float32)
    return out

  @classmethod
  def from_dict(cls, values) -> "PreprocessStats":
    """Inverse of ``to_dict``; ``values`` may be a dict or an ``NpzFile``."""
    try:
      num_features = int(np.asarray(values["num_features"]))
      bias_column = bool(np.asarray(values["bias_column"]))
    except KeyError as missing:
      raise LinearJaxError(
        f"preprocessing stats lack {missing}; save them with "
        "PreprocessStats.to_dict()"
      ) from None

    def vector(key):
      if key not in values:
        return None
      v = np.asarray(values[key], np.float32)
      if v.shape != (num_features,):
        raise LinearJaxError(
          f"preprocessing stats {key!r} has shape {v.shape}, expected "
          f"({num_features},); save them with PreprocessStats.to_dict()"
        )
      return v

    return cls(
      num_features=num_features,
      mean=vector("mean"),
      scale=vector("scale"),
      bias_column=bias_column,
      normalize_rows=bool(
        np.asarray(values["normalize_rows"])
        if "normalize_rows" in values
        else False
      ),
    )


def fit_stats(
  x_train_raw,
  *,
  rows=None,
  subtract_mean: bool = True,
  standardize: bool = False,
  bias_column: bool = False,
  normalize_rows: bool = False,
  total: Callable[[np.ndarray], np.ndarray] | None = None,
) -> PreprocessStats:
  """Fits μ (and σ) on the training rows ``[N, ...]`` only.

  Args:
    x_train_raw: raw training examples ``[N, ...]``, flattened to ``[N, D]``;
      pass the training rows only (validation already carved out).
    rows: int ``[M]``: fit on ``x_train_raw[rows]`` only, read a chunk at a
      time (no copy of the training rows).
    subtract_mean: subtract μ, the training mean ``[D]``.
    standardize: also divide by σ, the training standard deviation ``[D]``
      (σ = 0 becomes 1); implies subtracting μ.
    bias_column: append a ones column in ``apply``.
    normalize_rows: scale each row to unit L2 norm in ``apply``.
    total: where each of several processes holds part of the training rows
      (dense only), adds a float64 array over them
      (``linear_jax.shards.total``), so that μ, σ and the row count are
      those of all the rows; None: these rows are all.

  Returns:
    ``PreprocessStats`` (μ and σ computed in float64 by row chunks, stored
    as float32). For ``scipy.sparse`` rows: no μ (never centred), σ with the
    implicit zeros counted.
  """
  if sparse.is_sparse(x_train_raw):
    if rows is not None:  # CSR rows are gathered (a copy of the stored part)
      x_train_raw = x_train_raw[rows]
    if x_train_raw.shape[0] == 0:
      raise LinearJaxError(
        "the training split is empty; pass at least one training example"
      )
    scale = None
    if standardize:
      scale = sparse.column_std(x_train_raw).astype(np.float32)
      scale[scale == 0] = 1.0
    return PreprocessStats(
      num_features=x_train_raw.shape[1],
      scale=scale,
      bias_column=bool(bias_column),
      normalize_rows=bool(normalize_rows),
    )
  x = _flatten(x_train_raw)
  n = x.shape[0] if rows is None else len(rows)
  add = (lambda v: v) if total is None else total
  n_all = n if total is None else int(total(np.asarray([n]))[0])
  if n_all == 0:
    raise LinearJaxError(
      "the training split is empty; pass at least one training example"
    )
  mean = scale = None
  step = _chunk_rows(x)
  if subtract_mean or standardize:
    sums = np.zeros(x.shape[1], np.float64)
    for start in range(0, n, step):
      chunk = _take(x, rows, start, start + step)
      sums += chunk.sum(axis=0, dtype=np.float64)
    mean64 = add(sums) / n_all
    mean = mean64.astype(np.float32)
  if standardize:
    sq = np.zeros(x.shape[1], np.float64)
    for start in range(0, n, step):
      chunk = _take(x, rows, start, start + step)
      sq += np.square(chunk - mean64).sum(axis=0)
    scale = np.sqrt(add(sq) / n_all).astype(np.float32)
    scale[scale == 0] = 1.0
  return PreprocessStats(
    num_features=x.shape[1],
    mean=mean,
    scale=scale,
    bias_column=bool(bias_column),
    normalize_rows=bool(normalize_rows),
  )
