"""Your own feature arrays: ``npz:PATH`` (NumPy ``.npz``), and label rules.

``npz:PATH`` holds either

    x [N, D], y [N]                        split by ``from_raw`` (a fixed 20 %
                                           test carve, then the seeded
                                           validation carve of ``splits``)
    x_train, y_train, x_test, y_test       and optionally x_val, y_val

with features float16/32/64 or integers (e.g. uint8), two-dimensional, and
labels of any kind (ints or strings). Sparse matrices (``scipy.sparse``
``.npz`` files) and ``svmlight:TRAIN[,TEST]`` text files are read by
``sparse_source``, with the label rules of this module. Arrays above the memory budget
(``linear_jax.budget``) are refused.

Labels become ``[0, C)`` in sorted order of the distinct training labels;
``RawData.class_names`` keeps the original labels as strings (``"cat"``,
``"7"``), in label order, so predictions can be mapped back. Every bad input is
one ``LinearJaxError`` line naming the problem and the fix.

``load_npz(path, map_features=True)`` (a process's shard of the rows,
``from_raw(..., shard=True)``) reads the labels whole and maps the feature
arrays (``feature_member``): an ``.npy`` member stored uncompressed
(``np.savez``) lies contiguous in the zip file, so rows ``[start, stop)``
are read from disk only when touched. A compressed member
(``np.savez_compressed``) cannot be sliced: it is read whole, with a warning
that names ``np.savez`` as the fix.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np
from absl import logging

from linear_jax import budget
from linear_jax.checks import LinearJaxError
from linear_jax.data.dataset import RawData
from linear_jax.data.preprocessing import check_finite

# npz key pairs per split; "x"/"y" alone means "split it for me".
_SPLIT_KEYS = {
  "train": ("x_train", "y_train"),
  "test": ("x_test", "y_test"),
  "validation": ("x_val", "y_val"),
}


def _check_file(path: Path, what: str) -> Path:
  if not path.is_file():
    raise LinearJaxError(
      f"{what} file {path} does not exist; pass the path of an existing file"
    )
  if path.stat().st_size == 0:
    raise LinearJaxError(
      f"{what} file {path} is empty; write the arrays into it first"
    )
  return path


def features_array(x, key: str, shown: str) -> np.ndarray:
  """``x`` checked as a 2-D real numeric ``[N, D]`` array with N, D ≥ 1."""
  x = np.asarray(x)
  if x.ndim != 2:
    raise LinearJaxError(
      f"{shown}: {key!r} has shape {x.shape}, features must be 2-D [N, D]; "
      f"reshape it, e.g. x.reshape(len(x), -1)"
    )
  if x.dtype == np.bool_ or not (
    np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
  ):
    raise LinearJaxError(
      f"{shown}: {key!r} has dtype {x.dtype}; store features as float16, "
      "float32, float64 or an integer type such as uint8"
    )
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise LinearJaxError(
      f"{shown}: {key!r} has shape {x.shape}, with no examples or no "
      "features; store at least one example with one feature"
    )
  return x


def label_values(y, key: str, shown: str) -> np.ndarray:
  """``y`` as a 1-D array of ints or strings (integral floats become ints)."""
  y = np.asarray(y)
  if y.ndim != 1:
    raise LinearJaxError(
      f"{shown}: {key!r} has shape {y.shape}, labels must be 1-D [N]; store "
      "one label per example"
    )
  if np.issubdtype(y.dtype, np.floating):
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
      raise LinearJaxError(
        f"{shown}: {key!r} holds non-integer float labels; classes must be "
        "ints or strings (this is a classifier, not a regression)"
      )
    y = y.astype(np.int64)
  elif y.dtype.kind == "S":  # bytes: the same names as strings
    y = np.char.decode(y, "utf-8", errors="replace")
  elif y.dtype == np.bool_:
    y = y.astype(np.int64)
  elif not (np.issubdtype(y.dtype, np.integer) or y.dtype.kind in "US"):
    raise LinearJaxError(
      f"{shown}: {key!r} has dtype {y.dtype}; store labels as ints or strings"
    )
  return y


def encode_labels(splits: dict, shown: str) -> tuple[dict, tuple]:
  """Maps every split's labels to [0, C) by the sorted distinct train labels.

  Args:
    splits: ``{split: (x [N, D], y [N] ints or strings)}`` with a "train"
      split.
    shown: how errors name the source.

  Returns:
    ``(splits with int32 labels, class names)``: class c is the c-th smallest
    training label, its name that label as a string. Other splits may lack
    some training classes; a label absent from training is refused.
  """
  labels = {
    s: label_values(
      y, f"y_{s}" if s != "train" or "test" in splits else "y", shown
    )
    for s, (_, y) in splits.items()
  }
  kinds = {s: y.dtype.kind in "US" for s, y in labels.items()}
  if len(set(kinds.values())) > 1:
    raise LinearJaxError(
      f"{shown}: labels are strings in some splits and numbers in others; "
      "use one label type in every split"
    )
  classes = np.unique(labels["train"])
  if len(classes) < 2:
    raise LinearJaxError(
      f"{shown}: the training labels hold {len(classes)} class "
      f"({', '.join(map(str, classes))}); a classifier needs at least 2 "
      "classes"
    )
  for split, y in labels.items():
    # Other splits may lack training classes (small test sets often do, as
    # scikit-learn accepts); a label never seen in training has no column.
    unknown = np.setdiff1d(np.unique(y), classes)
    if len(unknown):
      raise LinearJaxError(
        f"{shown}: the {split} labels differ from the training labels: "
        f"{len(unknown)} not in train (e.g. {unknown[0]!s}); a classifier "
        "only predicts training classes, so drop those examples or add the "
        "class to the training split"
      )
  out = {
    s: (x, np.searchsorted(classes, labels[s]).astype(np.int32))
    for s, (x, _) in splits.items()
  }
  return out, tuple(str(c) for c in classes)


def _check_rows(splits: dict, shown: str) -> None:
  for split, (x, y) in splits.items():
    if x.shape[0] != len(y):
      raise LinearJaxError(
        f"{shown}: the {split} split has {x.shape[0]} feature rows but "
        f"{len(y)} labels; store one label per example"
      )


def _check_widths(splits: dict, shown: str) -> None:
  widths = {s: x.shape[1] for s, (x, _) in splits.items()}
  if len(set(widths.values())) > 1:
    raise LinearJaxError(
      f"{shown}: the splits have different feature counts {widths}; give "
      "every split the same D"
    )


def raw_from_arrays(
  splits: dict, shown: str, *, check_values: bool = True
) -> RawData:
  """Checked ``RawData`` from ``{split: (x [N, D], y [N])}`` of any label type.

  Checks rows against labels, equal widths, finite features (unless
  ``check_values`` is False: ``from_raw`` checks the rows it keeps) and the
  label sets (see ``encode_labels``), each failing in one line that names
  ``shown``.
  """
  _check_rows(splits, shown)
  _check_widths(splits, shown)
  checked = splits.items() if check_values else ()
  for split, (x, _) in checked:
    try:
      check_finite(x, split)
    except LinearJaxError as e:
      raise LinearJaxError(f"{shown}: {e}") from None
  splits, class_names = encode_labels(splits, shown)
  return RawData(splits=splits, class_names=class_names, image_shape=None)


def _npy_header(file) -> tuple:
  """``(shape, fortran_order, dtype)`` from the ``.npy`` header at the
  position of ``file``, which is left at the start of the data.
  """
  version = np.lib.format.read_magic(file)
  read_header = (
    np.lib.format.read_array_header_1_0
    if version == (1, 0)
    else np.lib.format.read_array_header_2_0
  )
  return read_header(file)


def _check_sizes(path: Path, shown: str) -> None:
  """Refuses a file whose arrays, by their headers, would not fit the memory
  budget (``linear_jax.budget``) once loaded, before anything is allocated.

  The peak is every array as stored (``np.load`` reads them all) plus the
  float32 copy of the features that preprocessing writes (keys starting
  with ``x``).
  """
  sizes = []
  try:
    with zipfile.ZipFile(path) as archive:
      for info in archive.infolist():
        with archive.open(info) as member:
          shape, _, dtype = _npy_header(member)
        sizes.append((info.filename.removesuffix(".npy"), shape, dtype))
  except (ValueError, OSError, zipfile.BadZipFile, EOFError):
    return  # not a plain .npy member: np.load reports it below
  count = lambda shape: int(np.prod(shape, dtype=np.float64))
  stored = sum(count(shape) * dtype.itemsize for _, shape, dtype in sizes)
  features = sum(
    count(shape) * 4 for name, shape, _ in sizes if name.startswith("x")
  )
  largest = max(sizes, key=lambda s: count(s[1]) * s[2].itemsize, default=None)
  if largest is None:
    return
  name, shape, dtype = largest
  budget.check_fits(
    stored + features,
    f"{shown} ({budget.format_size(stored)} stored, the largest array "
    f"{name} {shape} {dtype}, plus {budget.format_size(features)} of "
    "float32 features)",
    "use fewer examples or features",
  )


def _stored_offset(file, info: zipfile.ZipInfo) -> tuple | None:
  """``(shape, dtype, offset)`` of an uncompressed C-order ``.npy`` member's
  data in the zip file ``file`` (open, binary), or None where its rows
  cannot be mapped (compressed, Fortran order, object dtype).
  """
  if info.compress_type != zipfile.ZIP_STORED:
    return None
  file.seek(info.header_offset)
  local = file.read(30)  # the local file header; its extra field may differ
  if len(local) < 30 or local[:4] != b"PK\x03\x04":
    return None
  name_length, extra_length = struct.unpack("<HH", local[26:30])
  file.seek(info.header_offset + 30 + name_length + extra_length)
  shape, fortran_order, dtype = _npy_header(file)
  if fortran_order or dtype.hasobject:
    return None
  return shape, dtype, file.tell()


def feature_member(path: str | os.PathLike, key: str) -> np.ndarray:
  """The array ``key`` of an ``.npz``, mapped so that only the rows a caller
  touches are read.

  An uncompressed C-order member (``np.savez``) becomes a read-only
  ``np.memmap`` of its bytes in the zip file: ``x[start:stop]`` reads those
  rows only. Any other member (``np.savez_compressed``, Fortran order) is
  read whole, with a warning naming ``np.savez``.

  Args:
    path: the ``.npz`` file.
    key: the array's name (``"x"``, ``"x_train"``, ...).

  Returns:
    ``[N, ...]``: a ``np.memmap``, or the array read whole.
  """
  with zipfile.ZipFile(path) as archive, open(path, "rb") as file:
    found = _stored_offset(file, archive.getinfo(f"{key}.npy"))
  if found is not None:
    shape, dtype, offset = found
    if int(np.prod(shape)) == 0:  # mmap cannot map zero bytes
      return np.zeros(shape, dtype)
    return np.memmap(path, dtype, mode="r", offset=offset, shape=shape)
  logging.warning(
    "%s: %r is compressed, so every process reads it whole; write the file "
    "with np.savez (not np.savez_compressed) to read only each process's "
    "rows",
    path,
    key,
  )
  with np.load(path, allow_pickle=False) as f:
    return f[key]


def read_npz_arrays(
  path: str | os.PathLike, *, map_features: bool = False
) -> dict:
  """Every array of an ``.npz`` file (no pickles), checked to be one.

  With ``map_features``, arrays whose names start with ``x`` are mapped
  (``feature_member``), not read, and the memory budget is not checked
  here: a process reads only its rows of them (``from_raw(shard=True)``).

  Raises:
    LinearJaxError: a missing, empty or foreign file, or object arrays.
  """
  path = _check_file(Path(path).expanduser(), "npz")
  shown = f"npz:{path}"
  with open(path, "rb") as f:
    if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
      raise LinearJaxError(
        f"{shown} is not a NumPy .npz file (no zip header); write it with "
        "np.savez(path, x=..., y=...)"
      )
  if not map_features:
    _check_sizes(path, shown)
  try:
    with np.load(path, allow_pickle=False) as f:
      return {
        k: feature_member(path, k) if map_features and k[:1] == "x" else f[k]
        for k in f.files
      }
  except ValueError as e:
    if "pickle" in str(e):
      raise LinearJaxError(
        f"{shown} holds object arrays; store labels as ints or fixed-width "
        "strings (np.array(labels, dtype=str))"
      ) from None
    raise LinearJaxError(
      f"{shown} is not a NumPy .npz file ({e}); write it with np.savez"
    ) from None
  except (OSError, zipfile.BadZipFile, EOFError) as e:
    raise LinearJaxError(
      f"{shown} is not a readable NumPy .npz file ({' '.join(str(e).split())}"
      "); write it with np.savez"
    ) from None


def load_npz(path: str | os.PathLike, *, map_features: bool = False) -> RawData:
  """``RawData`` from an ``.npz`` of ``x``/``y`` or per-split keys (module doc).

  Args:
    path: the ``.npz`` file.
    map_features: map the feature arrays (``feature_member``) instead of
      reading them, and leave their finite check to ``from_raw``, which
      then must keep a shard of the rows (``shard=True``).

  Returns:
    ``RawData`` with the file's features as stored (``[N, D]``), int32 labels
    in [0, C), the original labels as class names, and no image shape.
  """
  arrays = read_npz_arrays(path, map_features=map_features)
  shown = f"npz:{Path(path).expanduser()}"
  splits = {}
  if "x_train" in arrays or "y_train" in arrays:
    for split, (xk, yk) in _SPLIT_KEYS.items():
      present = [k for k in (xk, yk) if k in arrays]
      if split == "validation" and not present:
        continue
      if len(present) < 2:
        missing = sorted({xk, yk} - set(present))
        raise LinearJaxError(
          f"{shown} lacks {', '.join(missing)} (found keys "
          f"{', '.join(sorted(arrays))}); store x_train, y_train, x_test, "
          "y_test (and optionally x_val, y_val), or just x and y"
        )
      splits[split] = (features_array(arrays[xk], xk, shown), arrays[yk])
  else:
    if "x" not in arrays or "y" not in arrays:
      missing = [k for k in ("x", "y") if k not in arrays]
      raise LinearJaxError(
        f"{shown} lacks {', '.join(missing)} (found keys "
        f"{', '.join(sorted(arrays)) or 'none'}); store x and y, or "
        "x_train, y_train, x_test, y_test"
      )
    splits["train"] = (features_array(arrays["x"], "x", shown), arrays["y"])
  return raw_from_arrays(splits, shown, check_values=not map_features)
