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
sets).
"""

from linear_jax.data.dataset import Dataset
from linear_jax.data.dataset import RawData
from linear_jax.data.dataset import from_arrays
from linear_jax.data.dataset import from_raw
from linear_jax.data.preprocessing import PreprocessStats
from linear_jax.data.preprocessing import check_finite
from linear_jax.data.preprocessing import fit_stats
from linear_jax.data.registry import DATASETS
from linear_jax.data.registry import format_dataset_table
from linear_jax.data.registry import list_datasets
from linear_jax.data.registry import load_dataset
