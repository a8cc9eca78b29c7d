"""Bad dataset names, options and features: one line naming the problem and fix.

Folder-specific errors (missing, empty, corrupt image, differing classes) are
tested in ``test_data_folder.py``; tfds ones in ``test_data_tfds.py``.
"""

import numpy as np
import pytest

from linear_jax import LinearJaxError, data


def error_of(fn, *args, **kwargs) -> str:
  with pytest.raises(LinearJaxError) as e:
    fn(*args, **kwargs)
  message = str(e.value)
  assert "\n" not in message
  return message


def test_unknown_name_lists_valid_names():
  message = error_of(data.load_dataset, "cifar100_typo")
  assert "unknown dataset 'cifar100_typo'" in message
  for name in ("cifar10", "digits", "hard_ring", "folder:PATH", "tfds:NAME"):
    assert name in message
  assert "did you mean 'cifar10'" in error_of(data.load_dataset, "cifar")


def test_non_string_name():
  assert "unknown dataset" in error_of(data.load_dataset, 10)


def test_literal_pattern_name():
  assert "is a pattern" in error_of(data.load_dataset, "tfds:NAME")


@pytest.mark.parametrize(
  "bad, split", [(np.nan, "train"), (np.inf, "test"), (-np.inf, "validation")]
)
def test_nan_or_inf_features_name_the_split(bad, split):
  x = {s: np.ones((10, 3)) for s in ("train", "test", "validation")}
  x[split][4, 1] = bad
  y = np.arange(10) % 2
  message = error_of(
    data.from_arrays,
    x["train"],
    y,
    x["test"],
    y,
    x_val=x["validation"],
    y_val=y,
  )
  assert f"x_{split} holds 1 NaN/Inf values" in message
  assert "example 4" in message


def test_values_beyond_float32_name_the_feature_and_the_value():
  """A float64 1e40 is finite but becomes inf in float32, where training
  computes: refused at load, not blamed on the learning rate later.
  """
  rng = np.random.default_rng(0)
  x = rng.normal(size=(30, 3))
  x[7, 1] = 1e40
  message = error_of(data.from_arrays, x, np.arange(30) % 2)
  assert "feature 1 of example 7" in message and "1e+40" in message
  assert "float32" in message and "learning rate" not in message
  x[7, 1] = 1e38  # within float32: accepted
  assert data.from_arrays(x, np.arange(30) % 2).x_train.dtype == np.float32


def test_non_numeric_features():
  x = np.array([["a", "b"]] * 4)
  assert "must be numeric" in error_of(data.from_arrays, x, np.zeros(4, int))


@pytest.mark.parametrize(
  "size, expected",
  [
    (2000, "must leave at least one"),
    (-1, "must leave at least one"),
    (1.5, "must lie in (0, 1)"),
    ("10", "must be an int or a fraction"),
    (True, "must be an int or a fraction"),
  ],
)
def test_bad_validation_size(size, expected):
  assert expected in error_of(
    data.load_dataset, "hard_ring", validation_size=size
  )


@pytest.mark.parametrize("max_train", [0, -5, 2.5])
def test_bad_max_train(max_train):
  assert "max_train" in error_of(
    data.load_dataset, "blobs", max_train=max_train
  )


def test_labels_out_of_range_or_mismatched():
  x = np.zeros((4, 2))
  message = error_of(
    data.from_arrays, x, np.array([0, 1, 2, 3]), class_names=("a", "b")
  )
  assert "y_train must lie in [0, 2)" in message
  assert "one label per example" in error_of(
    data.from_arrays, x, np.array([0, 1])
  )
  assert "integer labels" in error_of(data.from_arrays, x, np.zeros(4))


def test_own_validation_split_and_validation_size_conflict():
  x, y = np.zeros((5, 2)), np.arange(5) % 2
  message = error_of(
    data.from_arrays, x, y, x, y, x_val=x, y_val=y, validation_size=2
  )
  assert "has its own validation split" in message


def test_cifar10_jpeg_unset_names_the_variable(monkeypatch):
  monkeypatch.delenv("LINEAR_JAX_CIFAR10_JPEG", raising=False)
  message = error_of(data.load_dataset, "cifar10_jpeg")
  assert "set LINEAR_JAX_CIFAR10_JPEG=/path/to/cifar10-jpeg.tar.gz" in message
  assert "use the tfds dataset 'cifar10'" in message


def test_cifar10_jpeg_pointing_nowhere(monkeypatch, tmp_path):
  missing = tmp_path / "no-such-archive.tar.gz"
  monkeypatch.setenv("LINEAR_JAX_CIFAR10_JPEG", str(missing))
  message = error_of(data.load_dataset, "cifar10_jpeg")
  assert f"LINEAR_JAX_CIFAR10_JPEG={missing} does not exist" in message
  assert "use the tfds dataset 'cifar10'" in message


def test_cifar10_jpeg_is_not_searched_for_near_the_repository(
  monkeypatch, tmp_path
):
  """Neither the working directory's nor the repository's ../shared counts."""
  monkeypatch.delenv("LINEAR_JAX_CIFAR10_JPEG", raising=False)
  shared = tmp_path / "work" / "shared" / "data"
  shared.mkdir(parents=True)
  (shared / "cifar10-jpeg.tar.gz").write_bytes(b"")
  (tmp_path / "work" / "repo").mkdir()
  monkeypatch.chdir(tmp_path / "work" / "repo")
  assert "set LINEAR_JAX_CIFAR10_JPEG" in error_of(
    data.load_dataset, "cifar10_jpeg"
  )
