"""svmlight:TRAIN[,TEST] datasets, written with scikit-learn's dump_svmlight_file."""

import numpy as np
import pytest
from conftest import load_error as error_of
from sklearn.datasets import dump_svmlight_file

from linear_jax.checks import LinearJaxError
from linear_jax.data import load_dataset


def sparse_points(n, d, labels, seed):
  """Features with ~70 % zeros (as svmlight files usually are), float32."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  x[rng.random((n, d)) < 0.7] = 0.0
  y = np.asarray(labels)[rng.integers(0, len(labels), n)]
  return x, y


def write(path, x, y, **kw):
  dump_svmlight_file(x, y, str(path), **kw)
  return path


def test_train_and_test_files(tmp_path):
  xt, yt = sparse_points(120, 9, [-1, 1, 4], seed=0)
  xs, ys = sparse_points(40, 9, [-1, 1, 4], seed=1)
  # The test file's last column is all zero, so its own width would be
  # smaller; loading both files together gives one feature space.
  xs[:, -1] = 0
  train = write(tmp_path / "train.txt", xt, yt)
  test = write(tmp_path / "test.txt", xs, ys)
  ds = load_dataset(
    f"svmlight:{train},{test}", subtract_mean=False, validation_size=20
  )
  assert ds.class_names == ("-1", "1", "4")
  assert ds.num_features == 9 and len(ds.y_test) == 40
  code = {-1: 0, 1: 1, 4: 2}
  np.testing.assert_array_equal(ds.y_test, [code[v] for v in ys])
  # dump_svmlight_file writes float32 values with enough digits to round-trip.
  np.testing.assert_array_equal(ds.x_test, xs)
  assert len(ds.y_train) + len(ds.y_val) == 120


def test_train_file_alone_is_split_and_standardized(tmp_path):
  x, y = sparse_points(200, 5, [0, 1], seed=2)
  path = write(tmp_path / "all.txt", x, y, zero_based=False)
  ds = load_dataset(f"svmlight:{path}", standardize=True)
  assert len(ds.y_test) == 40 and ds.num_classes == 2
  # Standardized on train: column std 1 up to float32 rounding of a 144-term
  # sum (eps32 · sqrt(N) scale).
  tol = 10 * np.finfo(np.float32).eps * np.sqrt(144)
  np.testing.assert_allclose(ds.x_train.std(0), 1, rtol=tol)


def test_narrow_rows_are_densified_within_the_budget(tmp_path, monkeypatch):
  """The densify rule: these 8 features at ~30 % density are dense within
  the budget, and stay sparse (CSR) when the dense matrix exceeds it.
  """
  x, y = sparse_points(50, 8, [0, 1], seed=3)
  path = write(tmp_path / "a.txt", x, y)
  kw = dict(subtract_mean=False, validation_size=0)
  ds = load_dataset(f"svmlight:{path}", **kw)
  assert isinstance(ds.x_train, np.ndarray) and not ds.is_sparse
  # Below the peak of densifying (the dense rows twice, beside the CSR).
  monkeypatch.setenv("LINEAR_JAX_MEMORY_BUDGET", str(2 * 50 * 8 * 4 - 1))
  ds = load_dataset(f"svmlight:{path}", **kw)
  assert ds.is_sparse and ds.x_train.shape == (40, 8)
  with pytest.raises(LinearJaxError, match="over the"):
    load_dataset(f"svmlight:{path}", sparse_rows=False, **kw)


@pytest.mark.parametrize(
  "text,words",
  [
    ("1 1:0.5 2:1\n0 1:abc\n", "malformed line"),
    ("1 1:0.5 2:1\nbanana\n", "malformed line"),
    ("1 3:0.5 2:1\n0 1:1\n", "malformed line"),  # indices not increasing
    ("1 1:0.5\n1 2:1\n", "at least 2 classes"),
    ("0.5 1:0.5\n1 2:1\n", "non-integer float labels"),
    ("1 1:nan\n0 2:1\n", "NaN/Inf"),
    ("1 1:0.5\n0 1000000000000:1\n", "feature index of 2^31 or more"),
  ],
)
def test_bad_files_fail_in_one_line(tmp_path, text, words):
  path = tmp_path / "bad.txt"
  path.write_text(text)
  assert words in error_of(f"svmlight:{path}")


def test_bad_names_and_files(tmp_path):
  empty = tmp_path / "empty.txt"
  empty.write_text("")
  assert "is empty" in error_of(f"svmlight:{empty}")
  assert "does not exist" in error_of(f"svmlight:{tmp_path / 'no.txt'}")
  assert "optionally a test file" in error_of("svmlight:a,b,c")
  x, y = sparse_points(30, 4, [0, 1, 2], seed=4)
  train = write(tmp_path / "train.txt", x, y)
  test = write(tmp_path / "test.txt", x[:5], np.array([0, 1, 2, 7, 0]))
  assert "1 not in train (e.g. 7)" in error_of(f"svmlight:{train},{test}")
