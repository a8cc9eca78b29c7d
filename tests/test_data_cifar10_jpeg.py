"""The shared CIFAR-10 JPEG archive (``$LINEAR_JAX_CIFAR10_JPEG``, skipped
where it is absent): sizes, classes, and a cached reload equal to the first
load.
"""

import time

import numpy as np
import pytest

from linear_jax import data

CIFAR10_CLASSES = (
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("cifar10_cache")


@pytest.fixture
def archive(cifar10_jpeg_archive, monkeypatch):
  monkeypatch.setenv("LINEAR_JAX_CIFAR10_JPEG", str(cifar10_jpeg_archive))
  return cifar10_jpeg_archive


def test_cifar10_jpeg_sizes_classes_and_cached_reload(archive, cache_dir):
  start = time.perf_counter()
  first_ds = data.load_dataset("cifar10_jpeg", data_dir=cache_dir)
  first = time.perf_counter() - start
  sample = first_ds.x_train[::97].copy()
  del first_ds  # time the reload as a fresh process would see it
  start = time.perf_counter()
  ds = data.load_dataset("cifar10_jpeg", data_dir=cache_dir)
  reload = time.perf_counter() - start
  print(f"cifar10_jpeg: first load {first:.1f} s, cached reload {reload:.2f} s")

  assert (ds.x_train.shape, ds.x_val.shape, ds.x_test.shape) == (
    (49000, 3072),
    (1000, 3072),
    (10000, 3072),
  )
  assert ds.num_classes == 10 and ds.class_names == CIFAR10_CLASSES
  assert ds.image_shape == (32, 32, 3) and ds.num_features == 3072
  assert np.bincount(ds.y_test).tolist() == [1000] * 10
  assert np.bincount(np.concatenate([ds.y_train, ds.y_val])).tolist() == (
    [5000] * 10
  )
  # The training mean image of CIFAR-10 is ~(125, 123, 114) per channel.
  channel_means = ds.stats.mean.reshape(32, 32, 3).mean(axis=(0, 1))
  np.testing.assert_allclose(channel_means, [125.3, 123.0, 113.9], atol=1.5)
  np.testing.assert_array_equal(ds.x_train[::97], sample)  # same as decoded
  assert reload < 2.0


def test_cifar10_jpeg_without_validation(archive, cache_dir):
  ds = data.load_dataset(
    "cifar10_jpeg", data_dir=cache_dir, validation_size=0, subtract_mean=False
  )
  assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (50000, 0, 10000)
  assert ds.x_train.min() == 0 and ds.x_train.max() == 255
