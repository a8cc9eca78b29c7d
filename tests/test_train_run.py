"""``train.train_and_evaluate``: the workdir, resume, restore, and faults
(stuck workdirs, killed writes, strict JSON).
"""

import json
import os

import numpy as np
import pytest

import linear_jax as lj
from linear_jax import io, train
from linear_jax.train import run


def train_run(workdir, *, resume=False, **overrides):
  base = dict(
    dataset="blobs",
    loss="svm",
    epochs=4,
    batch_size=32,
    learning_rate=0.05,
    plots=False,
  )
  base.update(overrides)
  return train.train_and_evaluate(
    train.RunConfig(**base), str(workdir), resume=resume
  )


@pytest.mark.slow
def test_resume_ends_identical_to_uninterrupted_run(tmp_path):
  straight = train_run(tmp_path / "a")
  train_run(tmp_path / "b", epochs=2)
  with pytest.raises(lj.LinearJaxError, match="--resume"):
    train_run(tmp_path / "b")
  resumed = train_run(tmp_path / "b", resume=True)
  assert resumed["epochs_run"] == straight["epochs_run"] == 4
  a = np.load(tmp_path / "a" / "checkpoint.npz")
  b = np.load(tmp_path / "b" / "checkpoint.npz")
  for key in a.files:
    if key != "metadata_json":
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  assert resumed["test_accuracy"] == straight["test_accuracy"]
  strip = lambda rows: [
    {k: v for k, v in r.items() if k not in ("seconds", "examples_per_second")}
    for r in rows
  ]
  assert strip(io.read_jsonl(tmp_path / "b" / "metrics.jsonl")) == strip(
    io.read_jsonl(tmp_path / "a" / "metrics.jsonl")
  )


@pytest.mark.slow
def test_history_lives_in_metrics_not_in_the_checkpoint(tmp_path):
  """A kill after the checkpoint but before its metrics line, or after lines
  the checkpoint does not hold, resumes to the same history.
  """
  straight = train_run(tmp_path / "a")
  train_run(tmp_path / "b", epochs=3)
  meta = train.checkpoint.load_metadata(str(tmp_path / "b" / "checkpoint.npz"))
  assert meta["epoch"] == 3 and "history" not in meta
  metrics = tmp_path / "b" / "metrics.jsonl"
  lines = metrics.read_text().splitlines(keepends=True)
  metrics.write_text("".join(lines[:2]))  # the epoch-3 line never landed
  train_run(tmp_path / "b", resume=True)
  assert [r["epoch"] for r in io.read_jsonl(metrics)] == [1, 2, 3, 4]
  assert [r["val_accuracy"] for r in io.read_jsonl(metrics)] == [
    r["val_accuracy"] for r in io.read_jsonl(tmp_path / "a" / "metrics.jsonl")
  ]
  assert straight["epochs_run"] == 4


@pytest.mark.slow
def test_restore_evaluates_the_saved_model(tmp_path):
  summary = train_run(tmp_path / "run", standardize=True)
  restored = train.evaluate_checkpoint(str(tmp_path / "run"))
  assert restored["test_accuracy"] == summary["test_accuracy"]
  assert restored["epochs"] == 4
  assert summary["test_accuracy"] > 0.95


@pytest.mark.slow
def test_diverging_run_keeps_previous_checkpoint(tmp_path):
  train_run(tmp_path / "run", loss="softmax", epochs=2)
  before = np.load(tmp_path / "run" / "checkpoint.npz")["state/0000"].copy()
  with pytest.raises(train.DivergedError, match="epoch 3"):
    train_run(
      tmp_path / "run",
      loss="softmax",
      epochs=4,
      learning_rate=1e6,
      resume=True,
    )
  after = np.load(tmp_path / "run" / "checkpoint.npz")
  np.testing.assert_array_equal(after["state/0000"], before)
  assert np.all(np.isfinite(after["state/0000"]))


@pytest.mark.slow
def test_resume_with_fewer_epochs_than_run_is_refused(tmp_path):
  train_run(tmp_path / "run", loss="softmax", epochs=3)
  files = {
    name: (tmp_path / "run" / name).read_bytes()
    for name in ("checkpoint.npz", "metrics.jsonl", "summary.json")
  }
  with pytest.raises(lj.LinearJaxError) as e:
    train_run(tmp_path / "run", loss="softmax", epochs=2, resume=True)
  message = str(e.value)
  assert "has run 3 epochs, more than --epochs=2" in message
  assert "--epochs=3 or more" in message and "\n" not in message
  for name, content in files.items():
    assert (tmp_path / "run" / name).read_bytes() == content, name
  resumed = train_run(tmp_path / "run", loss="softmax", epochs=3, resume=True)
  assert resumed["epochs_run"] == 3


@pytest.mark.slow
def test_divergence_in_the_first_epoch_leaves_a_resumable_workdir(tmp_path):
  with pytest.raises(train.DivergedError, match="epoch 1"):
    train_run(tmp_path / "run", loss="softmax", epochs=2, learning_rate=1e6)
  summary = json.loads((tmp_path / "run" / "summary.json").read_text())
  assert summary["diverged_epoch"] == 1 and summary["epochs_run"] == 0
  resumed = train_run(
    tmp_path / "run", loss="softmax", epochs=2, learning_rate=0.05, resume=True
  )
  assert resumed["epochs_run"] == 2 and resumed["test_accuracy"] > 0.9


def test_workdir_guard_keeps_earlier_outputs(tmp_path):
  (tmp_path / "summary.json").write_text("earlier")
  for resume in (False, True):
    with pytest.raises(lj.LinearJaxError, match="remove summary.json"):
      train_run(tmp_path, resume=resume)
  assert (tmp_path / "summary.json").read_text() == "earlier"
  afile = tmp_path / "afile"
  afile.write_text("x")
  with pytest.raises(lj.LinearJaxError, match="is a file, not a folder"):
    run.prepare_workdir(str(afile), resume=False)


def test_resume_without_checkpoint_starts_fresh_and_clears_temporaries(
  tmp_path,
):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / f"{io.TEMP_PREFIX}x1y2z3w4-checkpoint.npz").write_bytes(b"torn")
  (workdir / ".checkpoint-abc.npz.tmp").write_bytes(b"torn")
  (workdir / ".tmp-notes").write_text("a user's file")
  summary = train_run(workdir, epochs=1, resume=True)
  assert summary["epochs_run"] == 1
  assert sorted(p.name for p in workdir.iterdir()) == [
    ".tmp-notes",
    "checkpoint.npz",
    "metrics.jsonl",
    "summary.json",
  ]
  assert (workdir / ".tmp-notes").read_text() == "a user's file"


def test_resume_refuses_other_settings_before_reading_state(tmp_path):
  train_run(tmp_path / "run", epochs=1)
  with pytest.raises(lj.LinearJaxError, match="standardize"):
    train_run(tmp_path / "run", epochs=2, resume=True, standardize=True)
  with pytest.raises(lj.LinearJaxError, match="optimizer='momentum'"):
    train_run(tmp_path / "run", epochs=2, resume=True, optimizer="adam")


@pytest.mark.slow
def test_a_decaying_schedule_resumes_only_with_its_epochs(tmp_path):
  train_run(tmp_path / "run", epochs=2, schedule="cosine")
  with pytest.raises(lj.LinearJaxError, match="resume with --epochs=2"):
    train_run(tmp_path / "run", epochs=4, resume=True, schedule="cosine")
  train_run(tmp_path / "const", epochs=1)  # constant: training longer is fine
  assert train_run(tmp_path / "const", epochs=2, resume=True)["epochs_run"] == 2


@pytest.mark.slow
def test_lbfgs_trains_through_the_workdir(tmp_path):
  """Optax's lbfgs keeps inf in its state at the start; only the parameters
  must be finite in a checkpoint.
  """
  summary = train_run(
    tmp_path / "run",
    loss="softmax",
    optimizer="lbfgs",
    full_batch=True,
    epochs=3,
    learning_rate=1.0,
  )
  assert summary["epochs_run"] == 3 and summary["test_accuracy"] > 0.9


@pytest.mark.slow
def test_resume_refuses_other_data(tmp_path):
  rng = np.random.default_rng(0)
  data = tmp_path / "d.npz"

  def write(n_features, shift):
    x = rng.normal(size=(200, n_features)) + shift
    np.savez(data, x=x, y=(x[:, 0] > shift).astype(int))

  write(5, 0.0)
  base = dict(dataset=f"npz:{data}", loss="softmax")
  train_run(tmp_path / "run", epochs=1, **base)
  write(5, 3.0)  # other rows, same shape
  with pytest.raises(lj.LinearJaxError, match="trained on other data"):
    train_run(tmp_path / "run", epochs=2, resume=True, **base)
  write(7, 0.0)  # another width
  with pytest.raises(lj.LinearJaxError, match="num_features 5 then, 7 now"):
    train_run(tmp_path / "run", epochs=2, resume=True, **base)


def test_summary_is_strict_json_with_reasons():
  summary = {"test_accuracy": float("nan"), "val_accuracy": 0.5}
  run._finite_summary(summary, {"test_accuracy": "the test split is empty"})
  assert summary["test_accuracy"] is None
  assert summary["null_reasons"] == {"test_accuracy": "the test split is empty"}
  assert json.loads(io.dumps(summary))["val_accuracy"] == 0.5


@pytest.mark.parametrize(
  "field,value,words",
  [
    ("seed", -1, "seed must be in [0, 4294967295]"),
    ("reg_strength", -1.0, "reg_strength must be ≥ 0"),
    ("label_smoothing", 2.0, "label_smoothing must be in [0, 1]"),
    ("learning_rate", 0.0, "learning_rate must be in (0, 1000000]"),
    ("learning_rate", 1e300, "learning_rate must be in (0, 1000000]"),
    ("epochs", 0, "epochs must be ≥ 1"),
    ("loss", "hinge", "unknown loss 'hinge'"),
  ],
)
def test_validate_is_one_line_per_rule(field, value, words):
  with pytest.raises(lj.LinearJaxError) as e:
    train.RunConfig(**{field: value}).validate()
  assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_resumes_a_checkpoint_that_carries_its_history(tmp_path):
  """Checkpoints written with the history in their metadata (and no epoch)
  still resume to the uninterrupted run.
  """
  straight = train_run(tmp_path / "a")
  train_run(tmp_path / "b", epochs=2)
  path = tmp_path / "b" / "checkpoint.npz"
  with np.load(path) as npz:
    arrays = {k: npz[k] for k in npz.files}
  meta = json.loads(str(arrays["metadata_json"]))
  meta["history"] = io.read_jsonl(tmp_path / "b" / "metrics.jsonl")
  del meta["epoch"], meta["last_metrics"]
  arrays["metadata_json"] = np.asarray(json.dumps(meta))
  np.savez(path, **arrays)
  (tmp_path / "b" / "metrics.jsonl").unlink()
  resumed = train_run(tmp_path / "b", resume=True)
  assert resumed["epochs_run"] == 4
  assert resumed["test_accuracy"] == straight["test_accuracy"]


def test_early_stopping_without_a_validation_split_is_refused(tmp_path):
  config = train.RunConfig(
    dataset="blobs", validation_size=0, early_stopping_patience=5, epochs=100
  )
  with pytest.raises(lj.LinearJaxError) as e:
    config.validate()
  assert "\n" not in str(e.value)
  assert "early_stopping_patience=5" in str(e.value)
  assert "validation_size=0" in str(e.value)
  with pytest.raises(lj.LinearJaxError, match="validation_size=0"):
    train.train_and_evaluate(config, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()
  config.early_stopping_patience = 0  # without early stopping: fine
  config.validate()


def test_checkpoints_on_a_time_cadence_not_every_epoch(tmp_path, monkeypatch):
  """50 epochs in well under the default 60 s: the checkpoint is written
  before the first epoch and at the end, and fsyncs do not grow with the
  epochs; --checkpoint_seconds=0 writes one per epoch.
  """
  saves, fsyncs = [], []
  real_save, real_fsync = train.checkpoint.save, os.fsync

  def counting_save(path, **kwargs):
    saves.append(kwargs["metadata"]["epoch"])
    real_save(path, **kwargs)

  def counting_fsync(fd):
    fsyncs.append(fd)
    real_fsync(fd)

  monkeypatch.setattr(train.checkpoint, "save", counting_save)
  monkeypatch.setattr(os, "fsync", counting_fsync)
  train_run(tmp_path / "a", epochs=50)
  assert saves == [0, 50]
  assert len(fsyncs) <= 6  # checkpoints, metrics, summary, lock file
  lines = io.read_jsonl(tmp_path / "a" / "metrics.jsonl")
  assert [r["epoch"] for r in lines] == list(range(1, 51))
  saves.clear()
  train_run(tmp_path / "b", epochs=5, checkpoint_seconds=0)
  assert saves == [0, 1, 2, 3, 4, 5]


class Killed(BaseException):
  """Stands for SIGKILL: nothing runs after it but ``finally`` blocks."""


@pytest.mark.slow
def test_a_kill_with_metrics_ahead_of_the_checkpoint_resumes_identically(
  tmp_path, monkeypatch
):
  straight = train_run(tmp_path / "a", epochs=10)
  train_run(tmp_path / "b", epochs=3)  # checkpoint at epoch 3
  written = []
  real_write = io.JsonLines.write

  def dies_at_epoch_8(self, row):
    if row["epoch"] == 8:
      raise Killed
    real_write(self, row)
    written.append(row["epoch"])

  monkeypatch.setattr(io.JsonLines, "write", dies_at_epoch_8)
  with pytest.raises(Killed):
    train_run(tmp_path / "b", epochs=10, resume=True, checkpoint_seconds=3600)
  monkeypatch.undo()
  assert written == [4, 5, 6, 7]
  meta = train.checkpoint.load_metadata(str(tmp_path / "b" / "checkpoint.npz"))
  assert meta["epoch"] == 3  # older than the 7 lines in metrics.jsonl
  assert len(io.read_jsonl(tmp_path / "b" / "metrics.jsonl")) == 7
  resumed = train_run(tmp_path / "b", epochs=10, resume=True)
  assert resumed["test_accuracy"] == straight["test_accuracy"]
  a = np.load(tmp_path / "a" / "checkpoint.npz")
  b = np.load(tmp_path / "b" / "checkpoint.npz")
  for key in a.files:
    if key != "metadata_json":
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  strip = lambda rows: [
    {k: v for k, v in r.items() if k not in ("seconds", "examples_per_second")}
    for r in rows
  ]
  assert strip(io.read_jsonl(tmp_path / "b" / "metrics.jsonl")) == strip(
    io.read_jsonl(tmp_path / "a" / "metrics.jsonl")
  )
