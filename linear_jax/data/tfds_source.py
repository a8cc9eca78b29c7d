"""Image classification datasets from tensorflow-datasets, read whole into memory.

Any tfds dataset with an ``image`` feature of fixed shape and a ``label``
``ClassLabel`` works (``cifar10``, ``mnist``, ``fashion_mnist``, ...). The
whole dataset is held in memory: right for these sizes (CIFAR-10 is 180 MB as
uint8 and 740 MB as float32). Datasets estimated above 8 GiB as float32 are
refused: they would need streaming, which linear_jax does not do.

Nothing is downloaded unless ``download=True``: a dataset that is not
prepared in the data folder (``data_dir``, else ``$TFDS_DATA_DIR``, else
``~/tensorflow_datasets``) fails at once with one line saying where the files
go and the command that prepares them on a machine with network.

TensorFlow is imported here only, inside ``load_tfds``, with GPUs hidden from
it (JAX owns the accelerator) and its C++ logging quietened. TensorFlow and
tensorflow-datasets are the optional extra ``linear_jax[tfds]``: without them
a tfds name fails with one line naming the extra, and every other dataset
works.

Under ``tfds.testing.mock_data`` the preparation check is skipped (there,
``download_and_prepare`` is a no-op and the examples are generated).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from linear_jax.checks import LinearJaxError
from linear_jax.data import dataset
from linear_jax.data.dataset import RawData

DATA_DIR_ENV = "TFDS_DATA_DIR"
INSTALL_EXTRA = 'pip install "linear_jax[tfds]"'
DEFAULT_DATA_DIR = Path("~/tensorflow_datasets")
SPLITS = ("train", "validation", "test")
_BATCH = 4096


def tfds_data_dir(data_dir=None) -> Path:
  """``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
  root = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
  return Path(root).expanduser().absolute()


def prepare_command(name: str, data_dir: Path) -> str:
  """The shell command that downloads and prepares ``name`` into ``data_dir``."""
  return (
    f'python -c "import tensorflow_datasets as tfds; tfds.builder('
    f"'{name}', data_dir='{data_dir}').download_and_prepare()\""
  )


def _import_tfds(name: str):
  """Imports tensorflow_datasets with GPUs hidden from TensorFlow.

  Raises ``LinearJaxError`` naming the ``tfds`` extra when either package is
  not installed.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise LinearJaxError(
      f"tfds dataset {name!r} needs TensorFlow and tensorflow-datasets "
      f"({' '.join(str(e).split())}); install them with {INSTALL_EXTRA}, or "
      "use folder:PATH or an embedded dataset such as digits"
    ) from None
  # TF's devices may already be initialized elsewhere: then they stay as is.
  with contextlib.suppress(RuntimeError):
    tf.config.set_visible_devices([], "GPU")
  return tfds


def _is_mocked(tfds) -> bool:
  """True inside ``tfds.testing.mock_data`` (it swaps ``download_and_prepare``)."""
  method = tfds.core.DatasetBuilder.download_and_prepare
  return getattr(method, "__name__", "") == "mock_download_and_prepare"


def _check_features(name: str, features) -> tuple:
  """``(image_shape, class_names)``, or an error if not image + ClassLabel."""
  keys = sorted(features.keys())
  if "image" not in keys or "label" not in keys:
    raise LinearJaxError(
      f"tfds dataset {name!r} has features {keys}; linear_jax needs 'image' "
      "and 'label' (use another dataset or folder:PATH)"
    )
  shape = tuple(features["image"].shape)
  if None in shape:
    raise LinearJaxError(
      f"tfds dataset {name!r} has images of varying shape {shape}; resize "
      "them to one shape and load them with folder:PATH"
    )
  names = getattr(features["label"], "names", None)
  if not names:
    raise LinearJaxError(
      f"tfds dataset {name!r} has a 'label' that is not a ClassLabel; use "
      "a classification dataset"
    )
  return shape, tuple(names)


def _read_split(tfds, builder, split: str) -> tuple[np.ndarray, np.ndarray]:
  """``(x uint8 [N, H, W, C], y int32 [N])`` of one split, in file order.

  Batches through ``tfds.as_numpy``: ``tfds.load(batch_size=-1)`` aborts the
  process under ``mock_data`` with TF 2.21 (``std::length_error``).
  """
  ds = builder.as_dataset(split=split, shuffle_files=False)
  ds = ds.map(lambda ex: (ex["image"], ex["label"])).batch(_BATCH)
  xs, ys = [], []
  for x, y in tfds.as_numpy(ds):
    xs.append(x)
    ys.append(y)
  if not xs:
    raise LinearJaxError(
      f"split {split!r} of tfds dataset {builder.name!r} "
      "is empty; prepare the dataset again"
    )
  return np.concatenate(xs), np.concatenate(ys).astype(np.int32)


def load_tfds(name: str, *, data_dir=None, download: bool = False) -> RawData:
  """Reads the train / (validation) / test splits of a prepared tfds dataset.

  Args:
    name: a tfds name, optionally with config and version
      (``"cifar10"``, ``"mnist:3.*.*"``).
    data_dir: tfds data folder (default ``$TFDS_DATA_DIR`` or
      ``~/tensorflow_datasets``).
    download: download and prepare it if missing (needs network).

  Returns:
    ``RawData`` with uint8 images ``[N, H, W, C]`` and int32 labels ``[N]``.
  """
  root = tfds_data_dir(data_dir)
  tfds = _import_tfds(name)
  try:
    builder = tfds.builder(name, data_dir=str(root))
  except tfds.core.registered.DatasetNotFoundError:
    raise LinearJaxError(
      f"tfds has no dataset {name!r}; see https://www.tensorflow.org/"
      "datasets/catalog for names"
    ) from None
  image_shape, class_names = _check_features(name, builder.info.features)
  if not _is_mocked(tfds) and not builder.is_prepared():
    if not download:
      raise LinearJaxError(
        f"tfds dataset {name!r} is not prepared in {root} (its files go to "
        f"{builder.data_dir}) and nothing is downloaded by default; on a "
        f"machine with network run {prepare_command(name, root)}, then copy "
        f"its {root / builder.name} into {root} here; or pass "
        "download=True; or use folder:PATH with an image folder"
      )
    try:
      builder.download_and_prepare()
    except Exception as e:  # network and disk errors come in many types
      raise LinearJaxError(
        f"downloading tfds dataset {name!r} into {root} failed "
        f"({type(e).__name__}: {' '.join(str(e).split())[:200]}); run "
        f"{prepare_command(name, root)} on a machine with network"
      ) from None

  known = dict(builder.info.splits)
  splits = [s for s in SPLITS if s in known] if known else ["train", "test"]
  if "train" not in splits:
    raise LinearJaxError(
      f"tfds dataset {name!r} has no 'train' split (splits: "
      f"{sorted(known)}); pick a dataset with one"
    )
  total = sum(known[s].num_examples for s in splits) if known else 0
  dataset.check_memory(total, image_shape, f"tfds dataset {name!r}")
  return RawData(
    splits={s: _read_split(tfds, builder, s) for s in splits},
    class_names=class_names,
    image_shape=image_shape,
  )
