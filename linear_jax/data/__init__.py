"""Datasets for the linear classifiers: loaded, split, preprocessed on train only.

    ds = load_dataset("cifar10", seed=0)      # tfds; 49,000 / 1,000 / 10,000
    ds = load_dataset("digits")               # offline, scikit-learn's 8x8 digits
    ds = load_dataset("folder:/data/pets")    # train/<class>/<image>.jpg
    ds.x_train  # float32 [N, D], mean image subtracted; ds.y_train int32 [N]

Modules: ``registry`` (names, ``load_dataset``, listing), ``dataset``
(``Dataset``, splitting and preprocessing order), ``splits`` (seeded
validation carve), ``preprocessing`` (``PreprocessStats``), ``tfds_source``
(the ``tfds`` extra), ``folder_source`` + ``layout``, ``archive``, ``decode``
and ``cache`` (verified decoded arrays), ``embedded`` (digits and 2-D point
sets), ``npz_source`` (NumPy arrays) and ``sparse_source`` (svmlight and
scipy.sparse files, kept sparse), ``distributions`` and ``sparse_text``
(synthetic data).
"""

from linear_jax.data.dataset import Dataset, RawData, from_arrays, from_raw
from linear_jax.data.preprocessing import (
  PreprocessStats,
  check_finite,
  fit_stats,
)
from linear_jax.data.registry import (
  DATASETS,
  format_dataset_table,
  list_datasets,
  load_dataset,
)

__all__ = [
  "check_finite",
  "Dataset",
  "DATASETS",
  "fit_stats",
  "format_dataset_table",
  "from_arrays",
  "from_raw",
  "list_datasets",
  "load_dataset",
  "PreprocessStats",
  "RawData",
]
