"""Sparse sources: svmlight and scipy.sparse .npz files load as CSR rows,
round trip exactly, and refuse bad input in one line.
"""

import logging

import numpy as np
import pytest
import scipy.sparse
from conftest import load_error
from sklearn.datasets import dump_svmlight_file

from linear_jax.data import distributions, load_dataset, sparse_source

TEXT = distributions.sparse_text(
  "news20", num_features=2000, num_classes=3, topic_words=100
)
KEEP = dict(validation_size=0, subtract_mean=False)


def text(n, seed):
  return TEXT.sample(n, seed=seed)


def save_sparse(path, x, y=None):
  scipy.sparse.save_npz(path, x)
  if y is not None:
    np.save(sparse_source.labels_path(path), y)
  return path


def test_svmlight_round_trip_stays_sparse(tmp_path):
  x, y = text(120, 0)
  xt, yt = text(40, 1)
  dump_svmlight_file(x, y, str(tmp_path / "train.txt"), zero_based=False)
  dump_svmlight_file(xt, yt, str(tmp_path / "test.txt"), zero_based=False)
  ds = load_dataset(
    f"svmlight:{tmp_path / 'train.txt'},{tmp_path / 'test.txt'}"
  )
  assert ds.is_sparse and ds.svmlight_zero_based is False
  assert ds.x_test.dtype == np.float32 and ds.stats.mean is None
  # 1-based files: column j of the file is index j + 1; the widest index
  # over both files sets D.
  width = max(x.indices.max(), xt.indices.max()) + 1
  assert ds.num_features == width
  np.testing.assert_array_equal(ds.x_test.toarray(), xt.toarray()[:, :width])
  np.testing.assert_array_equal(ds.y_test, yt)


def test_sparse_npz_round_trip_with_string_labels(tmp_path):
  x, y = text(150, 2)
  xt, yt = text(50, 3)
  names = np.array(["sport", "tech", "world"])
  train = save_sparse(tmp_path / "train.npz", x.tocoo(), names[y])
  test = save_sparse(tmp_path / "test.npz", xt.tocsc(), names[yt])
  ds = load_dataset(f"npz:{train},{test}", **KEEP)
  assert ds.is_sparse and ds.class_names == tuple(names)
  np.testing.assert_array_equal(ds.x_test.toarray(), xt.toarray())
  np.testing.assert_array_equal(ds.y_test, yt)
  # One file: the fixed 20 % test carve, still sparse.
  one = load_dataset(f"npz:{train}", **KEEP)
  assert one.is_sparse and len(one.y_test) == 30 and len(one.y_train) == 120


def test_int64_indices_load_and_narrow_to_int32(tmp_path):
  x, y = text(60, 4)
  wide = scipy.sparse.csr_array(
    (x.data, x.indices.astype(np.int64), x.indptr.astype(np.int64)),
    shape=x.shape,
  )
  assert wide.indices.dtype == np.int64
  ds = load_dataset(f"npz:{save_sparse(tmp_path / 'a.npz', wide, y)}", **KEEP)
  # The counts fit in int32, so the rows are held with int32 indices.
  assert ds.x_train.indices.dtype == np.int32
  total = scipy.sparse.vstack([ds.x_train, ds.x_test])
  assert total.nnz == x.nnz


def test_sparse_preprocessing_never_densifies(tmp_path):
  x, y = text(200, 5)
  x = x.multiply(np.linspace(0.5, 3.0, x.shape[1])[None, :]).tocsr()
  path = save_sparse(tmp_path / "a.npz", x.astype(np.float32), y)
  ds = load_dataset(f"npz:{path}", standardize=True, **KEEP)
  assert ds.is_sparse and ds.stats.mean is None
  # σ counts the implicit zeros; dividing by it keeps every zero a zero.
  std = np.sqrt(
    np.asarray(ds.x_train.multiply(ds.x_train).mean(0)).ravel()
    - np.square(np.asarray(ds.x_train.mean(0)).ravel())
  )
  used = np.asarray(ds.x_train.getnnz(axis=0)) > 0
  np.testing.assert_allclose(std[used], 1.0, rtol=1e-4)
  normed = load_dataset(f"npz:{path}", normalize_rows=True, **KEEP)
  norms = np.sqrt(np.asarray(normed.x_test.multiply(normed.x_test).sum(1)))
  np.testing.assert_allclose(norms, 1.0, rtol=1e-6)
  biased = load_dataset(f"npz:{path}", bias_column=True, **KEEP)
  assert biased.num_features == x.shape[1] + 1
  np.testing.assert_array_equal(biased.x_test[:, -1].toarray(), 1.0)


def test_sparse_rows_option_forces_either_layout(tmp_path):
  x, y = text(100, 6)
  path = save_sparse(tmp_path / "a.npz", x, y)
  dense = load_dataset(f"npz:{path}", sparse_rows=False, **KEEP)
  assert isinstance(dense.x_test, np.ndarray)
  kept = load_dataset(f"npz:{path}", sparse_rows=True, **KEEP)
  np.testing.assert_array_equal(kept.x_test.toarray(), dense.x_test)


@pytest.mark.parametrize(
  "text_lines,words",
  [
    ("1 1:0.5 -2:1\n0 1:1\n", "malformed line"),  # negative index
    ("1 1:0.5 1:1\n0 1:1\n", "malformed line"),  # duplicated index
    ("1 3:0.5 2:1\n0 1:1\n", "malformed line"),  # decreasing
    ("1 1:0.5\n0 2:nan\n", "NaN/Inf"),
    ("# only a comment\n", "holds no examples"),
  ],
)
def test_bad_svmlight_lines_fail_in_one_line(tmp_path, text_lines, words):
  path = tmp_path / "bad.txt"
  path.write_text(text_lines)
  assert words in load_error(f"svmlight:{path}")


def test_qid_fields_are_ignored_with_a_note(tmp_path, caplog):
  path = tmp_path / "rank.txt"
  path.write_text("1 qid:3 1:0.5 2:1\n0 qid:3 1:1\n1 qid:4 2:2\n0 qid:4 1:3\n")
  plain = tmp_path / "plain.txt"
  plain.write_text("1 1:0.5 2:1\n0 1:1\n1 2:2\n0 1:3\n")
  with caplog.at_level(logging.WARNING):
    ds = load_dataset(f"svmlight:{path}", validation_size=0)
  assert "qid fields" in caplog.text
  ref = load_dataset(f"svmlight:{plain}", validation_size=0)
  np.testing.assert_array_equal(ds.x_train, ref.x_train)


def _raw_csr_npz(path, data, indices, indptr, shape):
  np.savez(
    path,
    data=np.asarray(data, np.float32),
    indices=np.asarray(indices, np.int32),
    indptr=np.asarray(indptr, np.int32),
    format=np.array(b"csr"),
    shape=np.asarray(shape),
  )
  np.save(sparse_source.labels_path(path), np.array([0, 1]))
  return path


@pytest.mark.parametrize(
  "indices,words",
  [
    ([0, 7, 1], "column indices must lie in [0, D)"),  # out of range
    ([0, -1, 1], "column indices must lie in [0, D)"),  # negative
    ([2, 2, 1], "stores column 2 of row 0 twice"),  # duplicated
  ],
)
def test_bad_sparse_npz_indices(tmp_path, indices, words):
  path = _raw_csr_npz(tmp_path / "x.npz", [1, 2, 3], indices, [0, 2, 3], (2, 5))
  assert words in load_error(f"npz:{path}")


def test_bad_sparse_npz_files(tmp_path):
  x, y = text(20, 7)
  scipy.sparse.save_npz(tmp_path / "nolabels.npz", x)
  assert "has no labels file" in load_error(f"npz:{tmp_path / 'nolabels.npz'}")
  bad = x.copy()
  bad.data[3] = np.nan
  path = save_sparse(tmp_path / "nan.npz", bad, y)
  assert "NaN/Inf" in load_error(f"npz:{path}")
  empty = save_sparse(
    tmp_path / "empty.npz", scipy.sparse.csr_matrix((0, 5)), np.zeros(0)
  )
  assert "holds no rows" in load_error(f"npz:{empty}")
  wide = save_sparse(tmp_path / "wide.npz", scipy.sparse.random(20, 9), y)
  assert "different feature counts" in load_error(f"npz:{path},{wide}")


@pytest.mark.slow
def test_train_binary_refuses_a_bad_file_and_writes_nothing(
  tmp_path, run_module
):
  path = tmp_path / "bad.txt"
  path.write_text("1 1:0.5 4:1 4:2\n0 1:1\n")  # index 4 twice
  workdir = tmp_path / "run"
  proc = run_module(
    "experiments.train", f"--dataset=svmlight:{path}", f"--workdir={workdir}"
  )
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "malformed line" in last
  assert not workdir.exists() or not any(workdir.iterdir())
