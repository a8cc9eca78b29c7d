"""Dataset names, ``load_dataset``, and the table ``--list_datasets`` prints.

A name is one of ``DATASETS`` (below), ``folder:PATH`` (an image folder or a
``.tar.gz`` of one, see ``folder_source``), ``tfds:NAME`` (any
tensorflow-datasets image classification dataset, see ``tfds_source``),
``npz:PATH`` (feature arrays, see ``npz_source``; or
``npz:TRAIN.npz[,TEST.npz]`` written by ``scipy.sparse.save_npz``) or
``svmlight:TRAIN[,TEST]`` (LIBSVM text); the last two load as sparse rows
(``sparse_source``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

from linear_jax import checks
from linear_jax.checks import LinearJaxError
from linear_jax.data import dataset as dataset_lib
from linear_jax.data import (
  embedded,
  folder_source,
  npz_source,
  sparse_source,
  tfds_source,
)

CIFAR10_JPEG_ENV = "LINEAR_JAX_CIFAR10_JPEG"
# Default validation size for folder:PATH and tfds:NAME (a fraction of train).
DEFAULT_VALIDATION = 0.1


@dataclasses.dataclass(frozen=True)
class Entry:
  """One named dataset: where it comes from and what it is for."""

  source: str
  sizes: str
  shape: str
  purpose: str
  default_validation: int | float
  # (data_dir, download) -> RawData; None for a pattern (loaded by prefix).
  load: Callable | None


def cifar10_jpeg_path() -> Path:
  """The CIFAR-10 JPEG archive named by ``$LINEAR_JAX_CIFAR10_JPEG``.

  The variable holds the path of ``cifar10-jpeg.tar.gz`` (or of an unpacked
  folder of it). Unset or pointing nowhere, the error says how to set it and
  points to the tfds dataset ``cifar10`` instead.
  """
  value = os.environ.get(CIFAR10_JPEG_ENV)
  if not value:
    raise LinearJaxError(
      f"cifar10_jpeg needs the CIFAR-10 JPEG archive: set "
      f"{CIFAR10_JPEG_ENV}=/path/to/cifar10-jpeg.tar.gz, or pass "
      "folder:/path/to/cifar10-jpeg.tar.gz, or use the tfds dataset "
      "'cifar10' instead"
    )
  path = Path(value).expanduser()
  if not path.exists():
    raise LinearJaxError(
      f"{CIFAR10_JPEG_ENV}={value} does not exist; point it at "
      "cifar10-jpeg.tar.gz, or use the tfds dataset 'cifar10' instead"
    )
  return path.resolve()


def _tfds(name):
  return lambda data_dir, download: tfds_source.load_tfds(
    name, data_dir=data_dir, download=download
  )


def _embedded(make):
  return lambda data_dir, download: make()


def _cifar10_jpeg(data_dir, download):
  del download  # nothing to download: the archive is local
  return folder_source.load_folder(cifar10_jpeg_path(), cache_dir=data_dir)


_POINTS = "2,500 points: 2,000 train+val / 500 test"
#: Dataset name -> its source and description (``format_dataset_table``).
DATASETS = {
  "cifar10": Entry(
    "tfds",
    "50,000 train+val / 10,000 test",
    "32x32x3, 10 classes",
    "the lecture's CIFAR-10 (needs a prepared tfds data_dir)",
    1000,
    _tfds("cifar10"),
  ),
  "cifar10_jpeg": Entry(
    f"folder: ${CIFAR10_JPEG_ENV}",
    "50,000 train+val / 10,000 test",
    "32x32x3, 10 classes",
    "CIFAR-10 re-encoded as JPEG (cifar10-jpeg.tar.gz), offline",
    1000,
    _cifar10_jpeg,
  ),
  "mnist": Entry(
    "tfds",
    "60,000 train+val / 10,000 test",
    "28x28x1, 10 classes",
    "handwritten digits (needs a prepared tfds data_dir)",
    5000,
    _tfds("mnist"),
  ),
  "fashion_mnist": Entry(
    "tfds",
    "60,000 train+val / 10,000 test",
    "28x28x1, 10 classes",
    "clothing images (needs a prepared tfds data_dir)",
    5000,
    _tfds("fashion_mnist"),
  ),
  "digits": Entry(
    "embedded (scikit-learn)",
    "1,797: 1,438 train+val / 359 test",
    "8x8x1, 10 classes",
    "small offline image set, default of make run",
    0.2,
    _embedded(embedded.digits),
  ),
  **{
    name: Entry("embedded", _POINTS, shape, what, 0.2, _embedded(make))
    for name, shape, what, make in (
      (
        "hard_parity",
        "2-D, 2 classes",
        "lecture hard case: odd vs even number of positive coordinates",
        embedded.hard_parity,
      ),
      (
        "hard_ring",
        "2-D, 2 classes",
        "lecture hard case: 1 <= ||x|| <= 2 vs everything else",
        embedded.hard_ring,
      ),
      (
        "hard_modes",
        "2-D, 2 classes",
        "lecture hard case: three Gaussian modes vs everything else",
        embedded.hard_modes,
      ),
      (
        "blobs",
        "2-D, 4 classes",
        "easy case: linearly separable Gaussian blobs",
        embedded.blobs,
      ),
    )
  },
}
PATTERNS = {
  "folder:PATH": Entry(
    "image folder or .tar.gz",
    "as found",
    "as found",
    "your images: PATH/{train,test}/<class>/<image>.{jpg,jpeg,png} "
    "(other files ignored, unreadable images skipped)",
    DEFAULT_VALIDATION,
    None,
  ),
  "tfds:NAME": Entry(
    "tfds",
    "as in tfds",
    "as in tfds",
    "any tfds dataset with 'image' and 'label' features",
    DEFAULT_VALIDATION,
    None,
  ),
  "npz:PATH": Entry(
    "NumPy .npz",
    "as found",
    "[N, D] features",
    "your arrays: x, y (split for you) or x_train, y_train, x_test, "
    "y_test[, x_val, y_val]; or scipy.sparse.save_npz files "
    "TRAIN.npz[,TEST.npz] with labels in TRAIN.labels.npy",
    DEFAULT_VALIDATION,
    None,
  ),
  "svmlight:TRAIN[,TEST]": Entry(
    "LIBSVM text",
    "as found",
    "[N, D], sparse (CSR)",
    "svmlight/LIBSVM files (a train file, optionally a test file)",
    DEFAULT_VALIDATION,
    None,
  ),
}


def load_dataset(
  name: str = "cifar10",
  *,
  data_dir=None,
  seed: int = 0,
  validation_size: int | float | None = None,
  subtract_mean: bool = True,
  standardize: bool = False,
  bias_column: bool = False,
  normalize_rows: bool = False,
  max_train: int | None = None,
  mirror_train: bool = False,
  download: bool = False,
  sparse_rows: bool | None = None,
  shard: bool = False,
) -> dataset_lib.Dataset:
  """Loads a dataset by name, split and preprocessed on its training part only.

  Args:
    name: one of ``DATASETS`` (see ``format_dataset_table()``),
      ``folder:PATH``, ``tfds:NAME``, ``npz:PATH`` or
      ``svmlight:TRAIN[,TEST]``.
    data_dir: for tfds names, the tfds data folder (default
      ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``); for folders and
      ``cifar10_jpeg``, the cache folder (default ``$LINEAR_JAX_CACHE`` or
      ``~/.cache/linear_jax``). Unused by embedded sets.
    seed: seeds the validation split (``np.random.default_rng(seed)``); the
      same seed gives identical arrays.
    validation_size: examples carved from train (int, or a fraction in
      (0, 1)); None means the dataset's default (CIFAR-10: 1,000; MNIST:
      5,000; embedded sets: 20 %; others 10 %; never above 20 % of train),
      or the source's own validation split if it has one.
    subtract_mean: subtract the training mean μ ``[D]``.
    standardize: also divide by the training standard deviation σ ``[D]``.
    bias_column: append a ones column (the bias trick), ``D + 1`` features.
    normalize_rows: scale each row to unit L2 norm (the TF-IDF habit).
    max_train: keep at most this many training examples.
    mirror_train: add the left-right mirror of every training image
      (augmentation; 2N training rows).
    download: tfds only: download and prepare a missing dataset (needs
      network); by default a missing dataset is an error saying how to
      prepare it.
    sparse_rows: for sparse sources (svmlight, scipy.sparse npz): None
      applies the densify rule (``linear_jax.sparse.should_densify``), True
      keeps CSR rows, False densifies.
    shard: keep only this process's rows of a ``jax.distributed`` job
      (``from_raw``); an ``npz:`` file of dense arrays is read only there
      (``npz_source.feature_member``), other sources are read whole.

  Returns:
    A ``Dataset`` with float32 ``x_* [N, D]`` (numpy, or CSR for sparse
    rows) and int32 ``y_* [N]``.
  """
  if isinstance(name, str) and name in PATTERNS:
    raise LinearJaxError(
      f"{name!r} is a pattern; replace PATH or NAME, e.g. "
      "folder:/data/images, tfds:mnist or npz:/data/features.npz"
    )
  if isinstance(name, str) and name.startswith("folder:"):
    raw = folder_source.load_folder(name[len("folder:") :], cache_dir=data_dir)
    default = DEFAULT_VALIDATION
  elif isinstance(name, str) and name.startswith("npz:"):
    spec = name[len("npz:") :]
    if "," in spec or sparse_source.is_scipy_sparse_npz(spec):
      raw = sparse_source.load_sparse_npz(spec)
    else:
      raw = npz_source.load_npz(spec, map_features=shard)
    default = DEFAULT_VALIDATION
  elif isinstance(name, str) and name.startswith("svmlight:"):
    raw = sparse_source.load_svmlight(name[len("svmlight:") :])
    default = DEFAULT_VALIDATION
  elif isinstance(name, str) and name.startswith("tfds:"):
    raw = tfds_source.load_tfds(
      name[len("tfds:") :], data_dir=data_dir, download=download
    )
    default = DEFAULT_VALIDATION
  else:
    entry = checks.lookup({**DATASETS, **PATTERNS}, name, "dataset")
    raw = entry.load(data_dir, download)
    default = entry.default_validation
  return dataset_lib.from_raw(
    raw,
    name=name,
    seed=seed,
    validation_size=validation_size,
    default_validation=default,
    subtract_mean=subtract_mean,
    standardize=standardize,
    bias_column=bias_column,
    normalize_rows=normalize_rows,
    max_train=max_train,
    mirror_train=mirror_train,
    sparse_rows=sparse_rows,
    shard=shard,
  )


def list_datasets() -> list[dict]:
  """One dict per name: ``name, source, sizes, shape, purpose``."""
  rows = []
  for name, entry in {**DATASETS, **PATTERNS}.items():
    source = entry.source
    if name == "cifar10_jpeg":
      try:
        cifar10_jpeg_path()
      except LinearJaxError:
        source += (
          " (unset)"
          if not os.environ.get(CIFAR10_JPEG_ENV)
          else (" (not found)")
        )
    rows.append(
      {
        "name": name,
        "source": source,
        "sizes": entry.sizes,
        "shape": entry.shape,
        "purpose": entry.purpose,
      }
    )
  return rows


def format_dataset_table() -> str:
  """``list_datasets()`` as an aligned text table, one dataset per line."""
  columns = ("name", "source", "sizes", "shape", "purpose")
  rows = [
    dict(zip(columns, (c.upper() for c in columns), strict=True))
  ] + list_datasets()
  widths = {c: max(len(str(r[c])) for r in rows) for c in columns}
  return "\n".join(
    "  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip()
    for r in rows
  )
