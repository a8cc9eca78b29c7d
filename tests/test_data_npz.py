"""npz:PATH datasets: keys, dtypes, label remapping, preprocessing, bad input."""

import io
import json

import numpy as np
import pytest
from conftest import load_error as error_of
from conftest import run_binary as run_module

from linear_jax import budget, shards
from linear_jax.data import load_dataset, npz_source, splits


def blobs(n, d, labels, seed=0, dtype=np.float32):
  """Separable points: class k is centred at 4·e_k (features of ``dtype``)."""
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(labels), n)
  x = rng.normal(size=(n, d))
  x[np.arange(n), idx % d] += 4.0
  if np.issubdtype(dtype, np.integer):
    x = np.clip(x * 20 + 128, 0, 255)
  return x.astype(dtype), np.asarray(labels)[idx]


def save(tmp_path, name="d.npz", **arrays):
  path = tmp_path / name
  np.savez(path, **arrays)
  return f"npz:{path}"


@pytest.mark.parametrize(
  "dtype", [np.float16, np.float32, np.float64, np.uint8]
)
def test_x_y_is_split_like_other_sources(tmp_path, dtype):
  x, y = blobs(500, 7, [3, 5, 9], dtype=dtype)
  ds = load_dataset(save(tmp_path, x=x, y=y), seed=4, subtract_mean=False)
  # Labels 3, 5, 9 -> 0, 1, 2; names keep the original values.
  assert ds.class_names == ("3", "5", "9")
  assert ds.num_classes == 3 and ds.image_shape is None
  # The project's split: fixed 20 % test carve, then the seeded validation
  # carve (10 % default) of the rest, rows in permuted order.
  keep, test = splits.carve(500, 100, 20240101)
  keep.sort()
  train, val = splits.carve(400, 40, 4)
  code = {3: 0, 5: 1, 9: 2}
  y_code = np.array([code[v] for v in y])
  np.testing.assert_array_equal(ds.y_test, y_code[test])
  np.testing.assert_array_equal(ds.y_val, y_code[keep][val])
  np.testing.assert_array_equal(ds.y_train, y_code[keep][train])
  np.testing.assert_array_equal(ds.x_train, x[keep][train].astype(np.float32))
  assert ds.x_train.dtype == np.float32


def test_string_labels_and_own_splits(tmp_path):
  names = ["dog", "cat", "emu"]
  xt, yt = blobs(300, 4, names, seed=1)
  xs, ys = blobs(90, 4, names, seed=2)
  xv, yv = blobs(30, 4, names, seed=3)
  ds = load_dataset(
    save(
      tmp_path, x_train=xt, y_train=yt, x_test=xs, y_test=ys, x_val=xv, y_val=yv
    ),
    standardize=True,
  )
  assert ds.class_names == ("cat", "dog", "emu")
  assert len(ds.y_train) == 300 and len(ds.y_val) == 30 and len(ds.y_test) == 90
  np.testing.assert_array_equal(np.array(ds.class_names)[ds.y_test], ys)
  # Standardized with train statistics only: train columns have mean 0 and
  # std 1 up to float32 rounding of a 300-term sum (eps32 · sqrt(N) scale).
  tol = 10 * np.finfo(np.float32).eps * np.sqrt(300)
  np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=tol)
  np.testing.assert_allclose(ds.x_train.std(0), 1, rtol=tol)
  np.testing.assert_allclose(ds.stats.mean, xt.mean(0), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(ds.x_test, ds.stats.apply(xs))


def test_a_test_split_may_lack_training_classes(tmp_path):
  """Small test sets often miss a class (scikit-learn accepts them); a test
  label never seen in training is still refused.
  """
  names = ["ant", "bee", "cow"]
  xt, yt = blobs(120, 3, names, seed=1)
  xs, ys = blobs(30, 3, ["ant", "cow"], seed=2)
  ds = load_dataset(
    save(tmp_path, x_train=xt, y_train=yt, x_test=xs, y_test=ys)
  )
  assert ds.class_names == ("ant", "bee", "cow") and ds.num_classes == 3
  np.testing.assert_array_equal(np.array(ds.class_names)[ds.y_test], ys)
  ys[0] = "dog"
  np.savez(tmp_path / "d.npz", x_train=xt, y_train=yt, x_test=xs, y_test=ys)
  message = error_of(f"npz:{tmp_path / 'd.npz'}")
  assert "1 not in train (e.g. dog)" in message


def test_no_validation_key_carves_validation_from_train(tmp_path):
  xt, yt = blobs(200, 3, [0, 1])
  xs, ys = blobs(50, 3, [0, 1], seed=5)
  ds = load_dataset(
    save(tmp_path, x_train=xt, y_train=yt, x_test=xs, y_test=ys),
    validation_size=25,
  )
  assert len(ds.y_val) == 25 and len(ds.y_train) == 175
  np.testing.assert_allclose(
    ds.x_test + ds.stats.mean, xs, rtol=1e-6, atol=1e-6
  )


@pytest.mark.parametrize(
  "arrays,words",
  [
    (dict(x=np.ones((4, 2))), "lacks y"),
    (dict(features=np.ones((4, 2)), labels=np.arange(4)), "lacks x, y"),
    (
      dict(x_train=np.ones((4, 2)), y_train=[0, 1, 0, 1]),
      "lacks x_test, y_test",
    ),
    (
      dict(
        x_train=np.ones((4, 2)),
        y_train=[0, 1, 0, 1],
        x_test=np.ones((2, 2)),
        y_test=[0, 1],
        x_val=np.ones((2, 2)),
      ),
      "lacks y_val",
    ),
    (dict(x=np.ones((4, 2)), y=[0, 1, 0]), "4 feature rows but 3 labels"),
    (dict(x=np.ones((4, 2, 2)), y=[0, 1, 0, 1]), "must be 2-D"),
    (dict(x=np.ones(4), y=[0, 1, 0, 1]), "must be 2-D"),
    (
      dict(x=np.array([[0.0, 1], [np.nan, 1], [1, 1], [2, 2]]), y=[0, 1, 0, 1]),
      "NaN/Inf",
    ),
    (
      dict(x=np.array([[0.0, 1], [np.inf, 1], [1, 1], [2, 2]]), y=[0, 1, 0, 1]),
      "NaN/Inf",
    ),
    (dict(x=np.ones((4, 2)), y=[7, 7, 7, 7]), "at least 2 classes"),
    (dict(x=np.ones((4, 2)), y=[0.5, 1, 0, 1]), "non-integer float labels"),
    (dict(x=np.ones((4, 2)) + 0j, y=[0, 1, 0, 1]), "dtype complex128"),
    (dict(x=np.zeros((0, 2)), y=np.zeros(0, int)), "no examples"),
    (
      dict(
        x_train=np.ones((4, 2)),
        y_train=[0, 1, 0, 1],
        x_test=np.ones((2, 2)),
        y_test=[0, 2],
      ),
      "differ from the training",
    ),
    (
      dict(
        x_train=np.ones((4, 2)),
        y_train=[0, 1, 0, 1],
        x_test=np.ones((2, 3)),
        y_test=[0, 1],
      ),
      "different feature counts",
    ),
    (
      dict(
        x_train=np.ones((4, 2)),
        y_train=[0, 1, 0, 1],
        x_test=np.ones((2, 2)),
        y_test=["0", "1"],
      ),
      "one label type",
    ),
  ],
)
def test_bad_arrays_fail_in_one_line(tmp_path, arrays, words):
  assert words in error_of(save(tmp_path, **arrays))


def test_bad_files(tmp_path):
  empty = tmp_path / "empty.npz"
  empty.write_bytes(b"")
  assert "is empty" in error_of(f"npz:{empty}")
  assert "does not exist" in error_of(f"npz:{tmp_path / 'absent.npz'}")
  text = tmp_path / "text.npz"
  text.write_text("x,y\n1,2\n")
  assert "not a NumPy .npz file" in error_of(f"npz:{text}")
  objects = tmp_path / "objects.npz"
  np.savez(objects, x=np.ones((2, 2)), y=np.array([0, "a"], dtype=object))
  assert "object arrays" in error_of(f"npz:{objects}")
  # A header that promises 224 GiB is refused before anything is allocated.
  import zipfile  # pylint: disable=g-import-not-at-top

  forged = tmp_path / "forged.npz"
  header = io.BytesIO()
  np.lib.format.write_array_header_1_0(
    header, {"descr": "<f4", "fortran_order": False, "shape": (60, 10**9)}
  )
  with zipfile.ZipFile(forged, "w") as archive:
    archive.writestr("x.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:])
    buf = io.BytesIO()
    np.save(buf, np.arange(60) % 2)
    archive.writestr("y.npy", buf.getvalue())
  assert "GiB, over the" in error_of(f"npz:{forged}")


def test_bytes_labels_are_named_like_strings(tmp_path):
  rng = np.random.default_rng(0)
  y = np.array([b"ant", b"bee"])[rng.integers(0, 2, 100)]
  path = save(tmp_path, x=rng.normal(size=(100, 3)), y=y)
  ds = load_dataset(path)
  assert ds.class_names == ("ant", "bee")


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_process_reads_its_rows_of_an_uncompressed_member(tmp_path, dtype):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(11, 3)).astype(dtype)
  path = tmp_path / "d.npz"
  np.savez(path, y=np.arange(11), x=x)  # x second: its data start mid-file
  mapped = npz_source.feature_member(path, "x")
  assert isinstance(mapped, np.memmap) and mapped.dtype == dtype
  for p in range(3):  # an uneven split: 4, 4, 3 rows
    start, stop = shards.row_range(11, 3, p)
    np.testing.assert_array_equal(mapped[start:stop], x[start:stop])
    xs, _ = shards.read_shard(
      lambda a, b: (mapped[a:b], np.zeros(b - a)),
      11,
      num_processes=3,
      process_id=p,
      chunk_rows=3,
    )
    np.testing.assert_array_equal(xs, x[start:stop])


def test_a_compressed_member_is_read_whole_with_a_warning(tmp_path, caplog):
  x = np.arange(12.0, dtype=np.float32).reshape(4, 3)
  path = tmp_path / "d.npz"
  np.savez_compressed(path, x=x, y=np.arange(4))
  read = npz_source.feature_member(path, "x")
  assert not isinstance(read, np.memmap)
  np.testing.assert_array_equal(read, x)
  assert "np.savez" in caplog.text and "compressed" in caplog.text


def test_shards_of_the_rows_add_up_to_the_one_process_splits(
  tmp_path, monkeypatch
):
  """Two processes' ``shard=True`` loads (simulated: each process's
  ``row_range``), without mean subtraction, whose statistics need the sums
  of both (``shards.total``, tested in the probe's two-process test).
  """
  x, y = blobs(203, 5, [4, 7, 9])
  name = save(tmp_path, x=x, y=y)
  whole = load_dataset(name, seed=3, subtract_mean=False)
  row_range = shards.row_range
  parts = []
  for p in range(2):
    monkeypatch.setattr(shards, "row_range", lambda n, p=p: row_range(n, 2, p))
    parts.append(load_dataset(name, seed=3, subtract_mean=False, shard=True))
    start, stop = row_range(203, 2, p)
    for split in ("train", "val", "test"):  # only rows of its file range
      mine = getattr(parts[-1], f"x_{split}")
      assert np.isin(mine[:, 0], x[start:stop, 0]).all()

  def rows(ds_list, split):
    x_all = np.concatenate([getattr(d, f"x_{split}") for d in ds_list])
    y_all = np.concatenate([getattr(d, f"y_{split}") for d in ds_list])
    order = np.lexsort(x_all.T)
    return x_all[order], y_all[order]

  for split in ("train", "val", "test"):  # the same rows, in another order
    got, want = rows(parts, split), rows([whole], split)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
  assert parts[0].class_names == whole.class_names


def test_a_shard_names_the_file_row_of_a_bad_value(tmp_path, monkeypatch):
  """A process checks only its rows, and names the example by its row in
  the file (process 1 of 2 holds rows 102..202 of 203).
  """
  x, y = blobs(203, 5, [4, 7, 9])
  x[150, 2] = np.nan
  name = save(tmp_path, x=x, y=y)
  row_range = shards.row_range
  monkeypatch.setattr(shards, "row_range", lambda n: row_range(n, 2, 1))
  message = error_of(name, shard=True)
  assert "feature 2 of example 150" in message, message
  assert message.startswith(f"dataset {name!r}: x_train holds 1 NaN/Inf")


def test_a_shard_over_the_memory_budget_is_refused_before_reading(
  tmp_path, monkeypatch
):
  """The budget bounds each process's rows (as stored, then float32), not
  the whole file: process 1 of 2 holds 101 of 203 rows.
  """
  x, y = blobs(203, 5, [4, 7, 9], dtype=np.float64)
  name = save(tmp_path, x=x, y=y)
  row_range = shards.row_range
  monkeypatch.setattr(shards, "row_range", lambda n: row_range(n, 2, 1))
  need = 101 * 5 * (8 + 4)
  monkeypatch.setenv(budget.ENV, str(need))  # the whole file needs twice
  held = load_dataset(name, shard=True, validation_size=0)
  assert len(held.y_train) + len(held.y_test) == 101
  monkeypatch.setenv(budget.ENV, str(need - 1))
  message = error_of(name, shard=True)
  assert "this process's rows (of 1)" in message, message
  assert "101 examples of shape (5,)" in message, message
  assert "start more processes" in message, message


@pytest.mark.slow
def test_train_binary_on_npz_and_bad_npz(tmp_path):
  x, y = blobs(600, 40, ["a", "b", "c", "d"], seed=7)
  name = save(tmp_path, x=x, y=y)
  workdir = tmp_path / "run"
  proc = run_module(
    "experiments.train",
    f"--dataset={name}",
    "--loss=softmax",
    "--epochs=3",
    "--batch_size=64",
    "--learning_rate=0.05",
    "--standardize",
    f"--workdir={workdir}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  files = sorted(p.name for p in workdir.iterdir())
  # Not images and not 2-D points: no templates, no regions plot.
  assert files == [
    "checkpoint.npz",
    "curves.png",
    "metrics.jsonl",
    "summary.json",
  ]
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["test_accuracy"] >= 0.9 and summary["num_features"] == 40
  bad = save(tmp_path, "bad.npz", x=np.ones((5, 2, 2)), y=np.arange(5))
  proc = run_module(
    "experiments.train",
    f"--dataset={bad}",
    "--epochs=1",
    f"--workdir={tmp_path / 'bad'}",
    timeout=120,
  )
  assert proc.returncode == 1
  errors = [
    line for line in proc.stderr.splitlines() if line.startswith("error:")
  ]
  assert len(errors) == 1 and "must be 2-D" in errors[0], proc.stderr[-1500:]
  assert "Traceback" not in proc.stderr
  bad_dir = tmp_path / "bad"
  assert not bad_dir.exists() or not any(bad_dir.iterdir())


@pytest.mark.slow
def test_sweep_binary_on_npz(tmp_path):
  x, y = blobs(400, 10, [0, 1, 2], seed=8)
  name = save(tmp_path, x=x, y=y)
  proc = run_module(
    "experiments.sweep",
    f"--dataset={name}",
    "--losses=svm,softmax",
    "--regs=l2",
    "--reg_strengths=0,1e-3",
    "--learning_rates=0.01,0.1",
    "--epochs=2",
    "--batch_size=64",
    f"--workdir={tmp_path / 'sweep'}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  summary = json.loads((tmp_path / "sweep" / "sweep_summary.json").read_text())
  assert sorted(summary["best"]) == ["softmax", "svm"]
  for best in summary["best"].values():
    assert best["test_accuracy"] >= 0.8
