"""``Dataset``: preprocessed splits ready for s = f(x; W, b), and how one is built.

A source (tfds, an image folder, an embedded generator) returns ``RawData``:
unprocessed splits, images as they are stored (``uint8 [N, H, W, C]``) or
points as floats (``[N, 2]``). ``from_raw`` turns it into a ``Dataset``:

1. check that every split's features are finite (the error names the split);
2. carve the test split out of train if the source has none (a fixed 20 %,
   the same for every ``seed``, so test numbers stay comparable);
3. carve ``validation_size`` examples out of train with the permutation
   ``np.random.default_rng(seed).permutation(N_train)`` (unless the source has
   its own validation split and ``validation_size`` is None); the remaining
   training examples keep that permuted order and ``max_train`` keeps the
   first of them;
4. fit ``PreprocessStats`` on the training rows only, then apply the same
   stats to train, validation and test.

With ``shard=True`` (data parallel over processes, ``linear_jax.shards``)
each process keeps only its rows: rows ``shards.row_range`` of each source
array (train, test, validation as the source stores them). The splits are
carved over all rows as in one process (labels are whole on every process),
so the processes' parts of a split add up to the one-process split, and the
statistics of step 4 are fitted on all processes' training rows (sums added
by ``shards.total``). A source that reads lazily (``npz:`` via
``npz_source.feature_member``) reads only those rows; others were read
whole and keep their part.

Sparse features (``scipy.sparse`` matrices, from ``svmlight:`` files, sparse
``npz:`` files or ``from_arrays``) stay sparse: CSR float32, never centred
(``linear_jax.sparse``), unless the densify rule
(``linear_jax.sparse.should_densify``: the dense matrix is at most 4× the
CSR bytes and fits the memory budget) or ``sparse=False`` turns them into
dense rows before step 2.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from linear_jax import budget, shards, sparse
from linear_jax.checks import LinearJaxError
from linear_jax.data import preprocessing
from linear_jax.data import splits as splits_lib

# The test split carved from sources without one: fraction and fixed seed.
TEST_FRACTION = 0.2
TEST_SEED = 20240101


def check_memory(
  num_examples: int,
  example_shape: tuple,
  what: str,
  *,
  raw_itemsize: int = 1,
  fix: str = "use fewer or smaller examples (streaming is not supported)",
) -> None:
  """Refuses a dataset whose in-memory peak exceeds the memory budget.

  Datasets are loaded whole: the peak holds the raw examples
  (``raw_itemsize`` bytes per value, 1 for uint8 images) and their float32
  preprocessed copy (CIFAR-10: 0.17 + 0.69 GiB). Beyond the budget
  (``linear_jax.budget``) you would need streaming, which linear_jax does not
  do. ``fix`` says how to need less.
  """
  values = num_examples * int(np.prod(example_shape))
  budget.check_fits(
    values * (raw_itemsize + 4),
    f"{what}: {num_examples} examples of shape {tuple(example_shape)} "
    f"(raw, then float32)",
    fix,
  )


@dataclasses.dataclass(frozen=True, eq=False)
class RawData:
  """Unprocessed splits of one dataset, as a source returns them.

  Attributes:
    splits: ``{"train": (x, y), "test": (x, y)}`` and optionally
      ``"validation"``; ``x`` is ``[N, ...]`` (``uint8 [N, H, W, C]`` images
      or float ``[N, D]`` points), ``y`` is ``[N]`` integer labels in [0, C).
    class_names: the C class names, in label order.
    image_shape: ``(H, W, C)`` of one example, or None for point sets.
    svmlight_zero_based: for svmlight files, whether their feature indices
      start at 0 (None for other sources).
  """

  splits: dict
  class_names: tuple
  image_shape: tuple | None
  svmlight_zero_based: bool | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """Preprocessed train / validation / test splits of one dataset.

  Attributes:
    x_train, x_val, x_test: float32 ``[N, D]``, one flattened, preprocessed
      example per row (``D`` includes the ones column when
      ``stats.bias_column``): numpy arrays, or ``scipy.sparse.csr_matrix``
      for sparse data.
    y_train, y_val, y_test: int32 ``[N]`` labels in [0, ``num_classes``).
    num_classes: C.
    class_names: the C class names, in label order.
    image_shape: ``(H, W, C)`` of one raw example (e.g. ``(32, 32, 3)``), or
      None for 2-D point sets.
    name: the name it was loaded by (``"cifar10"``, ``"folder:PATH"``, ...).
    stats: the preprocessing fitted on ``x_train``; ``stats.apply(x_raw)``
      maps new raw examples the same way.
    svmlight_zero_based: for svmlight files, whether their feature indices
      start at 0 (None for other sources).
  """

  x_train: np.ndarray
  y_train: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  class_names: tuple
  image_shape: tuple | None
  name: str
  stats: preprocessing.PreprocessStats
  svmlight_zero_based: bool | None = None

  @property
  def is_sparse(self) -> bool:
    """Whether the ``x_*`` are ``scipy.sparse`` CSR matrices."""
    return sparse.is_sparse(self.x_train)

  @property
  def num_features(self) -> int:
    """D, the width of ``x_*`` (the ones column included, if any)."""
    return int(self.x_train.shape[1])

  def __repr__(self) -> str:
    return (
      f"Dataset({self.name!r}, train={len(self.y_train)}, "
      f"val={len(self.y_val)}, test={len(self.y_test)}, "
      f"D={self.num_features}, C={self.num_classes})"
    )


def _labels(y, split: str, num_classes: int) -> np.ndarray:
  """``y`` as int32 ``[N]``, checked to lie in [0, C)."""
  y = np.asarray(y)
  if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
    raise LinearJaxError(
      f"y_{split} must be [N] integer labels, got dtype {y.dtype} shape "
      f"{y.shape}; pass class indices"
    )
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise LinearJaxError(
      f"y_{split} must lie in [0, {num_classes}), found values in "
      f"[{y.min()}, {y.max()}]; remap labels to 0..C-1"
    )
  return y.astype(np.int32)


def _check_shard_fits(raw: RawData, name: str) -> LinearJaxError | None:
  """``check_memory`` of this process's rows of the dense features (as
  stored, then float32): the refusal, or None. Memory-mapped features
  (uncompressed ``npz:`` members) are checked before any row is read.
  """
  dense = [(x, y) for x, y in raw.splits.values() if not sparse.is_sparse(x)]
  if not dense:  # sparse rows: densified whole (checked there) or refused
    return None
  x, rows = dense[0][0], 0
  for _, y in dense:
    start, stop = shards.row_range(len(y))
    rows += stop - start
  try:
    check_memory(
      rows,
      np.shape(x)[1:],
      f"dataset {name!r}, this process's rows (of {jax.process_count()})",
      raw_itemsize=max(np.asarray(x).dtype.itemsize for x, _ in dense),
      fix="start more processes",
    )
  except LinearJaxError as e:
    return e
  return None


def from_raw(
  raw: RawData,
  *,
  name: str,
  seed: int = 0,
  validation_size: int | float | None = None,
  default_validation: int | float = 0.2,
  subtract_mean: bool = True,
  standardize: bool = False,
  bias_column: bool = False,
  normalize_rows: bool = False,
  max_train: int | None = None,
  mirror_train: bool = False,
  sparse_rows: bool | None = None,
  shard: bool = False,
) -> Dataset:
  """Splits, fits preprocessing on train only, and applies it (module docstring).

  Args:
    raw: the source's splits.
    name: the dataset's name, kept in ``Dataset.name``.
    seed: seeds the validation permutation; same seed, same arrays.
    validation_size: examples carved from train for validation (an int, or a
      fraction in (0, 1)); None uses the source's own validation split if it
      has one, else ``default_validation``.
    default_validation: the default (int or fraction), capped at 20 % of the
      training set so tiny (e.g. mocked) datasets still split.
    subtract_mean: subtract the training mean μ (``preprocessing.fit_stats``;
      sparse rows are never centred).
    standardize: also divide by the training σ.
    bias_column: append a column of ones (the bias trick).
    normalize_rows: scale each row to unit L2 norm.
    max_train: keep at most this many training examples (after the split).
    mirror_train: append the left-right mirror image of every training image
      (data augmentation: 2N training rows; statistics fitted on all 2N).
      Validation and test are left as they are. Images only.
    sparse_rows: for sparse sources: None applies the densify rule
      (module docstring), True keeps CSR rows, False densifies (refused
      over the memory budget). Dense sources stay dense.
    shard: keep this process's rows only (module docstring); every process
      of ``jax.distributed`` must call it. Dense features only.

  Returns:
    The ``Dataset``: with ``shard``, the rows of every split that this
    process holds, preprocessed with the statistics of all processes.
  """
  if "train" not in raw.splits:
    raise LinearJaxError(
      f"dataset {name!r} has no 'train' split (found {sorted(raw.splits)}); "
      "provide one"
    )
  num_classes = len(raw.class_names)
  arrays = {}
  densify = _densify(raw, name, sparse_rows)
  held = {}  # with shard: rows [start, stop) of each source split
  failure = None
  if shard:
    shards.raise_together(
      _check_shard_fits(raw, name),
      "another process's rows do not fit its memory budget (its error says "
      "by how much); start more processes",
    )
  for split, (x, y) in raw.splits.items():
    if sparse.is_sparse(x):
      if shard and not densify:
        raise LinearJaxError(
          f"dataset {name!r} has sparse rows, which are not sharded over "
          "processes; pass --num_processes=1"
        )
      x = sparse.as_csr(x, f"x_{split}")
      x = x.toarray() if densify else x
    else:
      x = np.asarray(x)  # a memory map stays one: nothing is read here
    y = _labels(y, split, num_classes)
    if x.shape[:1] != y.shape:
      raise LinearJaxError(
        f"x_{split} has {x.shape[0] if x.ndim else 0} rows but y_{split} has "
        f"{y.shape[0]}; pass one label per example"
      )
    held[split] = shards.row_range(len(y)) if shard else (0, len(y))
    start, stop = held[split]
    try:
      preprocessing.check_finite(
        x[start:stop] if shard else x, split, first_row=start
      )
    except LinearJaxError as e:
      if not shard:
        raise
      failure = failure or LinearJaxError(f"dataset {name!r}: {e}")
    arrays[split] = (x, y)
  # Each process checked only its rows: all stop if one found a bad value.
  if shard:
    shards.raise_together(
      failure,
      "another process found NaN/Inf or out-of-range features in its rows "
      "(its error names them); repair the data",
    )
  if num_classes < 2:
    raise LinearJaxError(
      f"dataset {name!r} has {num_classes} class(es) "
      f"{list(raw.class_names)}; a classifier needs at least 2, add "
      "examples of another class"
    )

  # Splits are (x, y, rows): the examples x[rows] (rows None: all of x),
  # so that carving copies no features; ``stats.apply`` gathers the rows
  # as it maps them, and the peak holds the raw arrays and one float32 copy.
  x_all, y_all = arrays["train"]
  pool = np.arange(len(y_all))  # rows of x_all not carved out for test
  if "test" in arrays:
    test_split: tuple[Any, Any, np.ndarray | None] = (*arrays["test"], None)
  else:
    test_size = splits_lib.count(TEST_FRACTION, len(y_all))
    keep, test = splits_lib.carve(len(y_all), test_size, TEST_SEED)
    keep.sort()
    test_split = (x_all, y_all[test], test)
    pool = keep

  own_val = "validation" in arrays and validation_size is None
  if "validation" in arrays and validation_size is not None:
    raise LinearJaxError(
      f"dataset {name!r} has its own validation split; leave "
      "validation_size unset to use it"
    )
  size = (
    0
    if own_val
    else splits_lib.validation_count(
      validation_size, len(pool), default_validation
    )
  )
  train, val = splits_lib.carve(len(pool), size, seed)
  if max_train is not None:
    if not isinstance(max_train, (int, np.integer)) or max_train < 1:
      raise LinearJaxError(
        f"max_train must be a positive int, got {max_train!r}"
      )
    train = train[:max_train]
  if own_val:
    val_split = (*arrays["validation"], None)
  else:
    val_split = (x_all, y_all[pool[val]], pool[val])
  if validation_size is None and not len(val_split[1]):
    raise LinearJaxError(
      f"dataset {name!r} has {len(pool)} training examples, too few to "
      "carve a validation split; add examples, or pass validation_size=0 "
      "to train without one"
    )
  train_split = (x_all, y_all[pool[train]], pool[train])
  num_test = len(test_split[1])
  if shard:
    test_source = "test" if "test" in arrays else "train"
    val_source = "validation" if own_val else "train"
    train_split = _keep_rows(train_split, held["train"])
    val_split = _keep_rows(val_split, held[val_source])
    test_split = _keep_rows(test_split, held[test_source])
  if mirror_train:
    if raw.image_shape is None:
      raise LinearJaxError(
        f"mirror_train needs images; {name!r} holds points, drop the option"
      )
    x_train, y_train, train_rows = train_split
    images = x_train[train_rows].reshape((-1,) + tuple(raw.image_shape))
    x_train = np.concatenate([images, images[:, :, ::-1]]).reshape(
      (-1,) + x_all.shape[1:]
    )
    train_split = (x_train, np.concatenate([y_train, y_train]), None)

  x_train, y_train, train_rows = train_split
  stats = preprocessing.fit_stats(
    x_train,
    rows=train_rows,
    subtract_mean=subtract_mean,
    standardize=standardize,
    bias_column=bias_column,
    normalize_rows=normalize_rows,
    total=shards.total if shard else None,
  )
  if not num_test:
    raise LinearJaxError(
      f"dataset {name!r} has an empty test split; add test examples (a "
      "source without a test split needs at least 5 training examples for "
      "its 20 % carve)"
    )
  x_val, y_val, val_rows = val_split
  x_test, y_test, test_rows = test_split
  return Dataset(
    x_train=stats.apply(x_train, rows=train_rows),
    y_train=y_train,
    x_val=stats.apply(x_val, rows=val_rows),
    y_val=y_val,
    x_test=stats.apply(x_test, rows=test_rows),
    y_test=y_test,
    num_classes=num_classes,
    class_names=tuple(raw.class_names),
    image_shape=None if raw.image_shape is None else tuple(raw.image_shape),
    name=name,
    stats=stats,
    svmlight_zero_based=raw.svmlight_zero_based,
  )


def _keep_rows(split: tuple, held: tuple[int, int]) -> tuple:
  """A split ``(x, y, rows)`` (rows None: all of x) restricted to the rows
  ``[start, stop)`` of ``x`` that this process holds, order kept: ``(x[start:
  stop], y of those rows, their indices into it)``.
  """
  x, y, rows = split
  start, stop = held
  rows = np.arange(len(y)) if rows is None else np.asarray(rows)
  keep = (rows >= start) & (rows < stop)
  return x[start:stop], y[keep], rows[keep] - start


def _densify(raw: RawData, name: str, sparse_rows: bool | None) -> bool:
  """Whether ``raw``'s sparse splits become dense rows (module docstring)."""
  x = raw.splits.get("train", (None,))[0]
  if sparse_rows or x is None or not sparse.is_sparse(x):
    return False
  shapes = [(s[0].shape, s[0].nnz) for s in raw.splits.values()]
  rows = sum(shape[0] for shape, _ in shapes)
  nnz = sum(count for _, count in shapes)
  width = x.shape[1]
  dense = rows * width * 4
  # The peak: the CSR, the dense rows, and their preprocessed copy.
  need = sum(sparse.csr_bytes(s[0]) for s in raw.splits.values()) + 2 * dense
  if sparse_rows is None:
    limit = budget.memory_budget()
    if need > limit or not sparse.should_densify(rows, width, nnz, limit):
      return False
  budget.check_fits(
    need,
    f"dataset {name!r}: densified, {rows} x {width} float32 features "
    f"({budget.format_size(dense)}, held twice: as read and preprocessed)",
    "keep the rows sparse",
  )
  return True


def from_arrays(
  x_train,
  y_train,
  x_test=None,
  y_test=None,
  *,
  x_val=None,
  y_val=None,
  class_names=None,
  image_shape=None,
  name: str = "arrays",
  **options,
) -> Dataset:
  """A ``Dataset`` from raw numpy arrays (your own data, same rules as sources).

  Args:
    x_train: ``[N, ...]`` raw training examples (or
      ``scipy.sparse`` ``[N, D]``).
    y_train: ``[N]`` int labels in [0, C).
    x_test: ``[M, ...]`` the test split; None carves a fixed 20 % of train.
    y_test: ``[M]`` its labels (None with ``x_test``).
    x_val: ``[V, ...]`` an own validation split (else one is carved from
      train).
    y_val: ``[V]`` its labels (None with ``x_val``).
    class_names: C names; default ``"0"``.. ``"C-1"`` with C = max label + 1.
    image_shape: ``(H, W, C)`` of one example, or None.
    name: kept in ``Dataset.name``.
    **options: ``seed``, ``validation_size``, ``subtract_mean``,
      ``standardize``, ``bias_column``, ``normalize_rows``, ``max_train``,
      ``sparse_rows`` as in ``from_raw``.

  Returns:
    The ``Dataset``.
  """
  splits = {"train": (x_train, y_train)}
  if x_test is not None:
    splits["test"] = (x_test, y_test)
  if x_val is not None:
    splits["validation"] = (x_val, y_val)
  if class_names is None:
    labels = [np.asarray(y) for _, y in splits.values()]
    top = max(
      (
        int(y.max())
        for y in labels
        if y.size and np.issubdtype(y.dtype, np.integer)
      ),
      default=0,
    )
    class_names = tuple(str(c) for c in range(top + 1))
  raw = RawData(
    splits=splits, class_names=tuple(class_names), image_shape=image_shape
  )
  return from_raw(raw, name=name, **options)
