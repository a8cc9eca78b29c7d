"""Training library: compiled once, deterministic, resumable, divergence-safe."""


import numpy as np
import pytest

import linear_jax as lj
from linear_jax import checkpoint
from linear_jax import experiment
from linear_jax import fit as fit_lib
from linear_jax import training


def blob_data(seed=0, n=600, d=5, c=3):
  rng = np.random.default_rng(seed)
  centres = 3 * rng.normal(size=(c, d))
  y = rng.integers(0, c, size=n)
  x = centres[y] + rng.normal(size=(n, d))
  return fit_lib.DeviceData.put(x[:500], y[:500], x[500:], y[500:])


@pytest.mark.parametrize("optimizer,loss", [
    ("sgd", "softmax"), ("momentum", "softmax"), ("nesterov", "softmax"),
    ("adam", "softmax"), ("adamw", "softmax"), ("momentum", "svm"),
    ("momentum", "squared_svm"), ("momentum", "crammer_singer")])
def test_optimizers_and_losses_learn_blobs(optimizer, loss):
  config = training.TrainConfig(loss=loss, optimizer=optimizer, batch_size=50,
                                epochs=3, schedule="cosine")
  hp = training.make_hparams(learning_rate=0.05, reg_strength=1e-3)
  history = fit_lib.fit(config, hp, blob_data(), log=False).progress.history
  assert history[-1]["val_accuracy"] > 0.9
  total = lambda h: h["data_loss"] + h["reg_loss"]
  assert total(history[-1]) < total(history[0])


def test_lbfgs_full_batch_and_refuses_minibatches():
  hp = training.make_hparams(learning_rate=1.0, reg_strength=1e-3)
  config = training.TrainConfig(optimizer="lbfgs", batch_size=None, epochs=20)
  result = fit_lib.fit(config, hp, blob_data(), log=False)
  assert result.progress.history[-1]["val_accuracy"] > 0.9
  with pytest.raises(lj.LinearJaxError, match="full batch"):
    fit_lib.fit(training.TrainConfig(optimizer="lbfgs", batch_size=32), hp,
                blob_data(), log=False)


def test_epoch_program_is_traced_once(monkeypatch):
  traces = []
  original = training.train_epoch

  def counting(*args, **kwargs):
    traces.append(1)
    return original(*args, **kwargs)

  monkeypatch.setattr(training, "train_epoch", counting)
  config = training.TrainConfig(epochs=6, batch_size=64)
  hp = training.make_hparams(learning_rate=0.1)
  result = fit_lib.fit(config, hp, blob_data(), log=False)
  assert len(result.progress.history) == 6
  assert len(traces) == 1


def test_same_seed_same_metrics_other_seed_differs():
  config = training.TrainConfig(epochs=3, batch_size=32, loss="svm")
  hp = training.make_hparams(learning_rate=0.05)
  runs = [fit_lib.fit(config, hp, blob_data(), seed=s, log=False)
          for s in (7, 7, 8)]
  strip = lambda r: [{k: v for k, v in h.items()
                      if k not in ("seconds", "examples_per_second")}
                     for h in r.progress.history]
  assert strip(runs[0]) == strip(runs[1])
  np.testing.assert_array_equal(runs[0].params["W"], runs[1].params["W"])
  assert not np.array_equal(runs[0].params["W"], runs[2].params["W"])


def test_divergence_stops_at_first_bad_epoch_and_keeps_good_state():
  data = blob_data()
  config = training.TrainConfig(epochs=5, batch_size=50)
  good = fit_lib.fit(config.__class__(epochs=2, batch_size=50),
                     training.make_hparams(learning_rate=0.01), data, log=False)
  huge = training.make_hparams(learning_rate=1e38)
  result = fit_lib.fit(config, huge, data, progress=good.progress, log=False)
  assert result.diverged_epoch == 3
  assert "epoch 3" in result.divergence_message
  assert "learning rate 1e+38" in result.divergence_message
  assert len(result.progress.history) == 2
  assert np.all(np.isfinite(result.params["W"]))


def test_checkpoint_refuses_nan_and_survives_a_killed_write(tmp_path, monkeypatch):
  path = str(tmp_path / "checkpoint.npz")
  state = {"W": np.ones((2, 2), np.float32)}
  checkpoint.save(path, state=state, metadata={"history": [1]})
  with pytest.raises(lj.LinearJaxError, match="NaN"):
    checkpoint.save(path, state={"W": np.full((2, 2), np.nan)}, metadata={})

  def killed(f, **arrays):
    f.write(b"partial garbage")
    raise KeyboardInterrupt

  monkeypatch.setattr(np, "savez", killed)
  with pytest.raises(KeyboardInterrupt):
    checkpoint.save(path, state={"W": np.zeros((2, 2))}, metadata={})
  monkeypatch.undo()
  loaded, _, _, meta = checkpoint.load(path, state)
  np.testing.assert_array_equal(loaded["W"], 1.0)
  assert meta["history"] == [1]
  assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def run_config(tmp_path, **overrides):
  base = dict(dataset="blobs", loss="svm", epochs=4, batch_size=32,
              learning_rate=0.05, workdir=str(tmp_path / "run"), plots=False)
  base.update(overrides)
  return experiment.RunConfig(**base)


def test_resume_ends_identical_to_uninterrupted_run(tmp_path):
  straight = experiment.run(run_config(tmp_path, workdir=str(tmp_path / "a")))
  experiment.run(run_config(tmp_path, workdir=str(tmp_path / "b"), epochs=2))
  with pytest.raises(lj.LinearJaxError, match="--resume"):
    experiment.run(run_config(tmp_path, workdir=str(tmp_path / "b")))
  resumed = experiment.run(run_config(tmp_path, workdir=str(tmp_path / "b"),
                                      resume=True))
  assert resumed["epochs_run"] == straight["epochs_run"] == 4
  a = np.load(tmp_path / "a" / "checkpoint.npz")
  b = np.load(tmp_path / "b" / "checkpoint.npz")
  for key in a.files:
    if key != "metadata_json":
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  assert resumed["test_accuracy"] == straight["test_accuracy"]
  lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == 4


def test_restore_evaluates_the_saved_model(tmp_path):
  summary = experiment.run(run_config(tmp_path, standardize=True))
  restored = experiment.evaluate_checkpoint(str(tmp_path / "run"))
  assert restored["test_accuracy"] == summary["test_accuracy"]
  assert summary["test_accuracy"] > 0.95


def test_diverging_run_keeps_previous_checkpoint(tmp_path):
  experiment.run(run_config(tmp_path, loss="softmax", epochs=2))
  before = np.load(tmp_path / "run" / "checkpoint.npz")["state/0000"].copy()
  with pytest.raises(training.DivergedError, match="epoch 3"):
    experiment.run(run_config(tmp_path, loss="softmax", epochs=4,
                              learning_rate=1e38, resume=True))
  after = np.load(tmp_path / "run" / "checkpoint.npz")
  np.testing.assert_array_equal(after["state/0000"], before)
  assert np.all(np.isfinite(after["state/0000"]))


def test_early_stopping_returns_best_params():
  config = training.TrainConfig(epochs=30, batch_size=50)
  hp = training.make_hparams(learning_rate=0.05)
  result = fit_lib.fit(config, hp, blob_data(), early_stopping_patience=2,
                       log=False)
  history = result.progress.history
  assert result.stopped_early and len(history) < 30
  best = max(h["val_accuracy"] for h in history)
  data = blob_data()
  acc = float(training.accuracy(result.params, data.x_val, data.y_val))
  assert acc == pytest.approx(best)


def test_workdir_guard_keeps_earlier_outputs(tmp_path):
  (tmp_path / "summary.json").write_text("earlier")
  with pytest.raises(lj.LinearJaxError, match="summary.json exists"):
    experiment.run(run_config(tmp_path, workdir=str(tmp_path)))
  assert (tmp_path / "summary.json").read_text() == "earlier"
  afile = tmp_path / "afile"
  afile.write_text("x")
  with pytest.raises(lj.LinearJaxError, match="is a file, not a folder"):
    experiment.prepare_workdir(str(afile), resume=False)


def test_resume_refuses_other_preprocessing(tmp_path):
  experiment.run(run_config(tmp_path, epochs=1))
  with pytest.raises(lj.LinearJaxError, match="standardize"):
    experiment.run(run_config(tmp_path, epochs=2, resume=True,
                              standardize=True))
