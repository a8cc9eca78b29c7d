"""Sparse feature files read as CSR: ``svmlight:`` text and scipy ``.npz``.

``svmlight:TRAIN[,TEST]`` reads LIBSVM/svmlight text files with
scikit-learn's parser into ``scipy.sparse.csr_matrix`` float32 rows (one
feature space for both files), never densified here: whether rows become
dense is decided for every source in ``linear_jax.data.dataset.from_raw``
(``linear_jax.sparse.should_densify``).

``npz:TRAIN.npz[,TEST.npz]`` reads files written by
``scipy.sparse.save_npz`` (any format: CSR, CSC, COO, ...). Their labels sit
beside them, in a NumPy file named like the matrix with ``.labels.npy`` in
place of ``.npz``::

    scipy.sparse.save_npz("train.npz", x_train)
    np.save("train.labels.npy", y_train)        # ints or strings, [N]

With one file, a test split is carved from it; with two, the second is the
test split and both must have the same feature count. At prediction
(``linear_jax.model``) the labels file is optional.

Bad input, each one ``LinearJaxError`` line, before anything is written:

- svmlight indices must be positive (1-based) or non-negative (0-based) and
  strictly increasing within a line; a negative, repeated or decreasing
  index is refused. LIBSVM's ``svm-train`` and LIBLINEAR's ``train`` refuse
  the same lines ("Wrong input format"), so a file they accept loads here.
- An index beyond the model's features at prediction is refused (LIBLINEAR's
  ``predict`` silently drops such features; a different feature space is
  more likely a mistake than intended). Inputs with fewer features are
  padded with zero columns.
- NaN or Inf values, files without examples, and labels of other classes
  are refused.
- ``qid:`` fields (svmlight ranking groups) carry no class information; they
  are ignored, with one logged note.
- In ``.npz`` matrices: out-of-range or negative indices (scipy's format
  check) and a column stored twice in a row are refused.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
from absl import logging

from linear_jax import sparse
from linear_jax.checks import LinearJaxError
from linear_jax.data import npz_source
from linear_jax.data.dataset import RawData

_check_file = npz_source._check_file  # pylint: disable=protected-access

#: Keys of an ``.npz`` written by ``scipy.sparse.save_npz``.
SCIPY_SPARSE_KEYS = frozenset({"format", "shape"})
LABELS_SUFFIX = ".labels.npy"


def parse_pair(spec: str, kind: str) -> list[Path]:
  """``"TRAIN[,TEST]"`` -> one or two paths."""
  paths = spec.split(",")
  if not 1 <= len(paths) <= 2 or not all(paths):
    raise LinearJaxError(
      f"{kind}:{spec} must name a train file and optionally a test file, "
      f"as {kind}:TRAIN or {kind}:TRAIN,TEST"
    )
  return [Path(p).expanduser() for p in paths]


def _has_qid(path: Path) -> bool:
  """Whether the file has a ``qid:`` field (a cheap byte scan)."""
  with open(path, "rb") as f:
    tail = b""
    while chunk := f.read(1 << 24):
      if b"qid:" in tail + chunk:
        return True
      tail = chunk[-3:]
  return False


def read_svmlight(
  paths: list,
  shown: str,
  *,
  num_features: int | None = None,
  zero_based: bool | None = None,
) -> tuple[list, bool]:
  """Svmlight files read as CSR rows of one feature space.

  Args:
    paths: the files.
    shown: how errors name the input.
    num_features: D (e.g. a trained model's): narrower files are padded,
      wider ones refused; default the largest index over the files.
    zero_based: whether feature indices start at 0. None: decided from all
      the files together (0-based if any index is 0), so that a train and a
      test file, or a model and its inputs, agree on the columns.

  Returns:
    ``([(x CSR float32 [N, D], y [N] float64) per file], zero_based)``.

  Raises:
    LinearJaxError: a malformed line (including negative, repeated or
      decreasing indices), no examples, NaN/Inf, or an index beyond
      ``num_features`` (one line each).
  """
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top

  paths = [_check_file(Path(p).expanduser(), "svmlight") for p in paths]
  try:  # indices as written: column j is index j
    loaded = sk_datasets.load_svmlight_files(
      [str(p) for p in paths], dtype=np.float32, zero_based=True
    )
  except OverflowError:  # the parser reads indices as C ints
    raise LinearJaxError(
      f"{shown} has a feature index of 2^31 or more, beyond what the "
      "svmlight reader takes; renumber the features from 1"
    ) from None
  except (ValueError, RuntimeError, UnicodeDecodeError) as e:
    raise LinearJaxError(
      f"{shown} has a malformed line ({' '.join(str(e).split())}); each line "
      "must be '<label> <index>:<value> ...' with increasing, non-negative "
      "indices"
    ) from None
  if any(_has_qid(p) for p in paths):
    logging.warning(
      "%s: qid fields (svmlight ranking groups) are ignored: classes come "
      "from the labels",
      shown,
    )
  xs, ys = list(loaded[0::2]), list(loaded[1::2])
  uses_zero = any(np.any(x.indices == 0) for x in xs)
  if zero_based is None:
    zero_based = bool(uses_zero)
  elif not zero_based and uses_zero:
    raise LinearJaxError(
      f"{shown} uses feature index 0 but the model's inputs are 1-based; "
      "write the features with the indices used in training"
    )
  out = []
  for x, y in zip(xs, ys, strict=True):
    if not len(y):
      raise LinearJaxError(
        f"{shown} holds no examples; write at least one line "
        "'<label> <index>:<value> ...'"
      )
    x = _drop_column_zero(x) if not zero_based else x
    x = sparse.as_csr(x, shown)
    if num_features is not None:
      x = sparse.with_width(x, num_features, shown)
    out.append((x, y))
  return out, zero_based


def _drop_column_zero(x):
  """``x[:, 1:]`` for 1-based files, keeping the index arrays' dtype."""
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  x = scipy.sparse.csr_matrix(x)
  return scipy.sparse.csr_matrix(
    (x.data, x.indices - 1, x.indptr),
    shape=(x.shape[0], max(x.shape[1] - 1, 0)),
  )


def load_svmlight(spec: str) -> RawData:
  """``RawData`` from ``"TRAIN[,TEST]"`` svmlight files, as CSR float32.

  Args:
    spec: the train file, optionally followed by ``,`` and the test file.

  Returns:
    ``RawData`` with CSR ``[N, D]`` features (D the largest feature index
    over both files) and ``svmlight_zero_based`` set.
  """
  shown = f"svmlight:{spec}"
  files, zero_based = read_svmlight(parse_pair(spec, "svmlight"), shown)
  splits = dict(zip(("train", "test"), files, strict=False))
  raw = npz_source.raw_from_arrays(splits, shown)
  return RawData(
    raw.splits, raw.class_names, None, svmlight_zero_based=zero_based
  )


def is_scipy_sparse_npz(path: str | os.PathLike) -> bool:
  """Whether ``path`` is an ``.npz`` written by ``scipy.sparse.save_npz``."""
  try:
    with zipfile.ZipFile(Path(path).expanduser()) as archive:
      names = {n.removesuffix(".npy") for n in archive.namelist()}
  except (OSError, zipfile.BadZipFile):
    return False
  return names >= SCIPY_SPARSE_KEYS


def labels_path(path: Path) -> Path:
  """``x.npz`` -> ``x.labels.npy``: where the labels of a matrix sit."""
  return path.with_name(path.name.removesuffix(".npz") + LABELS_SUFFIX)


def _check_size(path: Path, shown: str) -> None:
  """Refuses a matrix whose stored arrays exceed the budget, before
  loading them.
  """
  from linear_jax.sweep import memory  # pylint: disable=g-import-not-at-top

  budget = memory.device_budget()
  try:
    with zipfile.ZipFile(path) as archive:
      need = sum(info.file_size for info in archive.infolist())
  except (OSError, zipfile.BadZipFile):
    return
  if need > budget:
    raise LinearJaxError(
      f"{shown} stores {need / 2**30:.2f} GiB of arrays, over the "
      f"{budget / 2**30:.2f} GiB budget; use fewer examples or features"
    )


def read_sparse_npz(
  path: str | os.PathLike, *, labels_required: bool = True
) -> tuple:
  """A ``scipy.sparse.save_npz`` matrix and its labels.

  Args:
    path: the ``.npz`` file.
    labels_required: refuse a missing ``<stem>.labels.npy`` (else None).

  Returns:
    ``(x CSR float32 [N, D], y [N] or None)``.
  """
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  path = _check_file(Path(path).expanduser(), "npz")
  shown = f"npz:{path}"
  _check_size(path, shown)
  try:
    x = scipy.sparse.load_npz(path)
  except (ValueError, OSError, KeyError, zipfile.BadZipFile) as e:
    raise LinearJaxError(
      f"{shown} is not a readable scipy.sparse file "
      f"({' '.join(str(e).split())}); write it with scipy.sparse.save_npz"
    ) from None
  x = sparse.as_csr(x, shown)
  if x.shape[0] == 0:
    raise LinearJaxError(
      f"{shown} holds no rows; save a matrix with at least one example"
    )
  label_file = labels_path(path)
  if not label_file.is_file():
    if labels_required:
      raise LinearJaxError(
        f"{shown} has no labels file {label_file}; save the labels beside "
        f"it with np.save({str(label_file)!r}, y)"
      )
    return x, None
  try:
    y = np.load(label_file, allow_pickle=False)
  except ValueError as e:
    raise LinearJaxError(
      f"{label_file} is not a readable labels array "
      f"({' '.join(str(e).split())}); save ints or fixed-width strings "
      "with np.save"
    ) from None
  return x, y


def load_sparse_npz(spec: str) -> RawData:
  """``RawData`` from ``"TRAIN.npz[,TEST.npz]"`` scipy.sparse files.

  Args:
    spec: the train matrix, optionally followed by ``,`` and the test one
      (module docstring for the labels' layout).

  Returns:
    ``RawData`` with CSR float32 ``[N, D]`` features.
  """
  shown = f"npz:{spec}"
  files = [read_sparse_npz(p) for p in parse_pair(spec, "npz")]
  splits = dict(zip(("train", "test"), files, strict=False))
  return npz_source.raw_from_arrays(splits, shown)
