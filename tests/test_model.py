"""linear_jax.model: a workdir's model predicts exactly what its training
run reported, as a pure function, through the predict binary too.
"""

import csv

import jax
import numpy as np
import pytest

from linear_jax import model as model_lib
from linear_jax import train
from linear_jax.checks import LinearJaxError

CLASSES = np.array(["cat", "dog", "emu"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A standardized softmax run on string-labelled npz features."""
  root = tmp_path_factory.mktemp("predict")
  rng = np.random.default_rng(0)
  centres = 0.7 * rng.normal(size=(3, 6))  # overlapping: errors to match

  def sample(n):
    y = rng.integers(0, 3, size=n)
    return (centres[y] + rng.normal(size=(n, 6))).astype(np.float32), CLASSES[y]

  (x_train, y_train), (x_test, y_test) = sample(400), sample(300)
  data = root / "feats.npz"
  np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
  config = train.RunConfig(
    dataset=f"npz:{data}",
    loss="softmax",
    epochs=3,
    batch_size=32,
    standardize=True,
    plots=False,
  )
  summary = train.train_and_evaluate(config, str(root / "run"))
  return root, data, summary, x_test, y_test


@pytest.mark.slow
def test_predictions_reproduce_the_reported_test_accuracy(trained):
  root, data, summary, _, _ = trained
  out = root / "preds.npz"
  result = model_lib.predict_file(str(root / "run"), f"npz:{data}", str(out))
  assert result["examples"] == 300
  # The same examples right: counts equal (the run reports a float32 mean).
  assert round(result["accuracy"] * 300) == round(
    summary["test_accuracy"] * 300
  )
  assert 0.5 < result["accuracy"] < 0.95  # learned, with errors to reproduce
  with np.load(out) as f:
    assert f["classes"].tolist() == ["cat", "dog", "emu"]
    assert f["scores"].shape == (300, 3)
    np.testing.assert_array_equal(f["labels"], f["scores"].argmax(-1))
    # One name per example, and the class list: names a reader cannot mix up.
    assert sorted(f.files) == [
      "classes",
      "labels",
      "predicted_class_names",
      "scores",
    ]
    np.testing.assert_array_equal(
      f["predicted_class_names"], CLASSES[f["labels"]]
    )
  assert summary["class_names"] == ["cat", "dog", "emu"]


def test_scores_are_a_pure_function_of_raw_inputs(trained):
  root, _, _, x_test, _ = trained
  model = model_lib.load_model(str(root / "run"))
  traces = []

  def scores(x):
    traces.append(1)
    return model.scores(x)

  fn = jax.jit(scores)
  a = np.asarray(fn(x_test[:50]))
  b = np.asarray(fn(x_test[50:100]))
  assert len(traces) == 1  # same shapes: compiled once
  # s = ((x − μ)/σ) W + b, written out in float64 from the saved arrays.
  x = (x_test[:100].astype(np.float64) - model.stats.mean) / model.stats.scale
  expected = x @ np.asarray(model.params["W"], np.float64) + np.asarray(
    model.params["b"], np.float64
  )
  # float32: D = 6 terms per score, |terms| ≲ 10, so ≲ 1e-5 absolute.
  np.testing.assert_allclose(np.concatenate([a, b]), expected, atol=1e-4)
  np.testing.assert_array_equal(
    model.predict(x_test[:100]), np.concatenate([a, b]).argmax(-1)
  )


def test_csv_output(trained):
  root, data, _, _, _ = trained
  out = root / "preds.csv"
  model_lib.predict_file(str(root / "run"), f"npz:{data}", str(out))
  with open(out) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 300
  assert list(rows[0]) == [
    "index",
    "label",
    "class_name",
    "score_cat",
    "score_dog",
    "score_emu",
  ]
  for row in rows[:20]:
    scores = [float(row[f"score_{c}"]) for c in CLASSES]
    assert int(row["label"]) == int(np.argmax(scores))
    assert row["class_name"] == CLASSES[int(row["label"])]


def test_refusals_are_one_line_and_write_nothing(trained, tmp_path):
  root, data, _, x_test, _ = trained
  run = str(root / "run")
  existing = tmp_path / "exists.npz"
  existing.write_bytes(b"mine")
  bad_labels = tmp_path / "bad.npz"
  np.savez(
    bad_labels, x=x_test[:5], y=np.array(["cat", "yak", "cat", "emu", "dog"])
  )
  narrow = tmp_path / "narrow.npz"
  np.savez(narrow, x=x_test[:5, :4])
  infinite = tmp_path / "inf.npz"
  np.savez(infinite, x=np.where(np.eye(5, 6) > 0, np.inf, x_test[:5]))
  beyond = tmp_path / "beyond.npz"  # finite float64, inf as float32
  np.savez(beyond, x=np.full((5, 6), 1e300))
  # In float32 range, but ((x − μ)/σ)·W is not.
  w = np.asarray(model_lib.load_model(run).params["W"])[:6, 0]
  overflow = tmp_path / "overflow.npz"
  top = np.finfo(np.float32).max
  np.savez(overflow, x=np.tile(np.sign(w) * top, (5, 1)).astype(np.float32))
  cases = [
    (run, f"npz:{data}", str(existing), "exists"),
    (run, f"npz:{data}", str(tmp_path / "p.txt"), ".npz or .csv"),
    (
      str(tmp_path / "nowhere"),
      f"npz:{data}",
      str(tmp_path / "p.npz"),
      "no checkpoint",
    ),
    (run, f"npz:{bad_labels}", str(tmp_path / "p.npz"), "'yak'"),
    (run, f"npz:{narrow}", str(tmp_path / "p.npz"), "4 features"),
    (run, f"csv:{data}", str(tmp_path / "p.npz"), "npz:PATH"),
    (run, f"npz:{infinite}", str(tmp_path / "p.npz"), "NaN/Inf"),
    (run, f"npz:{beyond}", str(tmp_path / "p.npz"), "feature 0 of example 0"),
    (run, f"npz:{overflow}", str(tmp_path / "p.npz"), "overflow float32"),
  ]
  for workdir, spec, out, words in cases:
    with pytest.raises(LinearJaxError) as e:
      model_lib.predict_file(workdir, spec, out)
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
  assert existing.read_bytes() == b"mine"
  assert not (tmp_path / "p.npz").exists()


@pytest.mark.slow
def test_binary(trained, run_module):
  root, data, summary, _, _ = trained
  out = root / "binary.npz"
  proc = run_module(
    "experiments.predict",
    f"--workdir={root / 'run'}",
    f"--input=npz:{data}",
    f"--output={out}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert f"accuracy {summary['test_accuracy']:.4f}" in proc.stdout
  proc = run_module(
    "experiments.predict",
    f"--workdir={root / 'run'}",
    f"--input=npz:{data}",
    f"--output={out}",
  )
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
  assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_svmlight_inputs_keep_the_training_files_columns(tmp_path):
  """A 0-based training file and an input file that happens to have no
  feature 0 are read in the same columns (not shifted by one).
  """
  from sklearn.datasets import dump_svmlight_file  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(1)
  x = rng.normal(size=(200, 5)).astype(np.float32)
  y = (x[:, 0] + x[:, 3] > 0).astype(int)
  dump_svmlight_file(x, y, str(tmp_path / "train.txt"), zero_based=True)
  x_new = rng.normal(size=(40, 5)).astype(np.float32)
  x_new[:, 0] = 0.0  # no "0:" entries in this file
  dump_svmlight_file(
    x_new, np.zeros(40, int), str(tmp_path / "new.txt"), zero_based=True
  )
  config = train.RunConfig(
    dataset=f"svmlight:{tmp_path / 'train.txt'}",
    loss="softmax",
    epochs=2,
    batch_size=32,
    plots=False,
  )
  train.train_and_evaluate(config, str(tmp_path / "run"))
  model = model_lib.load_model(str(tmp_path / "run"))
  assert model.svmlight_zero_based is True
  out = tmp_path / "p.npz"
  model_lib.predict_file(
    str(tmp_path / "run"), f"svmlight:{tmp_path / 'new.txt'}", str(out)
  )
  with np.load(out) as f:
    np.testing.assert_allclose(
      f["scores"], model.scores(x_new), rtol=1e-6, atol=1e-6
    )


@pytest.mark.slow
def test_an_output_another_run_is_writing_is_refused(
  trained, tmp_path, lock_holder
):
  root, data, _, _, _ = trained
  out = tmp_path / "preds.npz"
  with lock_holder(out, output=True) as pid:
    with pytest.raises(LinearJaxError) as e:
      model_lib.predict_file(str(root / "run"), f"npz:{data}", str(out))
    assert str(e.value).startswith(f"{out} is in use by PID {pid} on ")
    assert "--output" in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()


@pytest.mark.slow
def test_sparse_svmlight_model_predicts_sparse_inputs(tmp_path, run_module):
  """A run on wide svmlight rows trains sparse; its predictions on sparse
  inputs equal the run's test accuracy; inputs with fewer features are
  padded, with more refused in one line and nothing written.
  """
  import scipy.sparse  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import dump_svmlight_file  # pylint: disable=g-import-not-at-top

  from linear_jax.data import distributions, sparse_source  # pylint: disable=g-import-not-at-top

  spec = distributions.sparse_text(
    "news20", num_features=1500, num_classes=3, topic_words=100
  )
  x, y, xt, yt = spec.splits(0, train_size=400, test_size=150)
  train_file, test_file = tmp_path / "train.txt", tmp_path / "test.txt"
  dump_svmlight_file(x, y, str(train_file))
  dump_svmlight_file(xt, yt, str(test_file))
  config = train.RunConfig(
    dataset=f"svmlight:{train_file},{test_file}",
    loss="svm",
    epochs=3,
    learning_rate=0.5,
    batch_size=32,
    normalize_rows=True,
    plots=False,
  )
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  model = model_lib.load_model(str(tmp_path / "run"))
  assert model.stats.normalize_rows and model.stats.mean is None
  d = model.stats.num_features
  out = tmp_path / "p.npz"
  result = model_lib.predict_file(
    str(tmp_path / "run"), f"svmlight:{test_file}", str(out)
  )
  assert result["accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-6)
  # Fewer features (a scipy.sparse file with D - 7 columns): padded.
  narrow = xt[:, : d - 7].tocsr()
  scipy.sparse.save_npz(tmp_path / "narrow.npz", narrow)
  np.save(sparse_source.labels_path(tmp_path / "narrow.npz"), yt.astype(str))
  model_lib.predict_file(
    str(tmp_path / "run"),
    f"npz:{tmp_path / 'narrow.npz'}",
    str(tmp_path / "n.npz"),
  )
  with np.load(tmp_path / "n.npz") as f:
    padded = scipy.sparse.hstack([narrow, scipy.sparse.csr_matrix((150, 7))])
    want = np.asarray(model.scores(padded.tocsr()))
    np.testing.assert_allclose(f["scores"], want, rtol=1e-6)
  # More features: refused by the binary, in one line, nothing written.
  wide = tmp_path / "wide.txt"
  wide.write_text(f"0 1:0.5 {d + 3}:1\n")
  proc = run_module(
    "experiments.predict",
    f"--workdir={tmp_path / 'run'}",
    f"--input=svmlight:{wide}",
    f"--output={tmp_path / 'w.csv'}",
  )
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and f"trained on {d}" in last
  assert not (tmp_path / "w.csv").exists()
