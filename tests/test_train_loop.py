"""``train.fit``: learns, compiles once, is deterministic, stops on divergence."""

import numpy as np
import pytest

import linear_jax as lj
from linear_jax.train import epoch as epoch_lib
from linear_jax.train import loop


@pytest.mark.slow
@pytest.mark.parametrize(
  "optimizer,loss",
  [
    ("sgd", "softmax"),
    ("momentum", "softmax"),
    ("nesterov", "softmax"),
    ("adam", "softmax"),
    ("adamw", "softmax"),
    ("momentum", "svm"),
    ("momentum", "squared_svm"),
    ("momentum", "crammer_singer"),
  ],
)
def test_optimizers_and_losses_learn_blobs(optimizer, loss, device_blobs):
  config = epoch_lib.TrainConfig(
    loss=loss, optimizer=optimizer, batch_size=50, epochs=3, schedule="cosine"
  )
  hp = epoch_lib.make_hparams(learning_rate=0.05, reg_strength=1e-3)
  history = loop.fit(config, hp, device_blobs, log=False).progress.history
  assert history[-1]["val_accuracy"] > 0.9
  total = lambda h: h["data_loss"] + h["reg_loss"]
  assert total(history[-1]) < total(history[0])


@pytest.mark.slow
def test_lbfgs_full_batch_and_refuses_minibatches(device_blobs):
  hp = epoch_lib.make_hparams(learning_rate=1.0, reg_strength=1e-3)
  config = epoch_lib.TrainConfig(optimizer="lbfgs", batch_size=None, epochs=20)
  result = loop.fit(config, hp, device_blobs, log=False)
  assert result.progress.history[-1]["val_accuracy"] > 0.9
  with pytest.raises(lj.LinearJaxError, match="full batch"):
    loop.fit(
      epoch_lib.TrainConfig(optimizer="lbfgs", batch_size=32),
      hp,
      device_blobs,
      log=False,
    )


def test_epoch_program_is_traced_once(monkeypatch, device_blobs):
  traces = []
  original = epoch_lib.train_epoch

  def counting(*args, **kwargs):
    traces.append(1)
    return original(*args, **kwargs)

  monkeypatch.setattr(epoch_lib, "train_epoch", counting)
  config = epoch_lib.TrainConfig(epochs=6, batch_size=64)
  hp = epoch_lib.make_hparams(learning_rate=0.1)
  result = loop.fit(config, hp, device_blobs, log=False)
  assert len(result.progress.history) == 6
  assert len(traces) == 1


@pytest.mark.slow
def test_same_seed_same_metrics_other_seed_differs(device_blobs):
  config = epoch_lib.TrainConfig(epochs=3, batch_size=32, loss="svm")
  hp = epoch_lib.make_hparams(learning_rate=0.05)
  runs = [
    loop.fit(config, hp, device_blobs, seed=s, log=False) for s in (7, 7, 8)
  ]
  strip = lambda r: [
    {k: v for k, v in h.items() if k not in ("seconds", "examples_per_second")}
    for h in r.progress.history
  ]
  assert strip(runs[0]) == strip(runs[1])
  np.testing.assert_array_equal(runs[0].params["W"], runs[1].params["W"])
  assert not np.array_equal(runs[0].params["W"], runs[2].params["W"])


@pytest.mark.slow
def test_divergence_stops_at_first_bad_epoch_and_keeps_good_state(device_blobs):
  config = epoch_lib.TrainConfig(epochs=5, batch_size=50)
  good = loop.fit(
    config.__class__(epochs=2, batch_size=50),
    epoch_lib.make_hparams(learning_rate=0.01),
    device_blobs,
    log=False,
  )
  huge = epoch_lib.make_hparams(learning_rate=1e38)
  result = loop.fit(
    config, huge, device_blobs, progress=good.progress, log=False
  )
  assert result.diverged_epoch == 3
  assert "epoch 3" in result.divergence_message
  assert "learning rate 1e+38" in result.divergence_message
  assert len(result.progress.history) == 2
  assert np.all(np.isfinite(result.params["W"]))


@pytest.mark.slow
def test_early_stopping_returns_best_params(device_blobs):
  config = epoch_lib.TrainConfig(epochs=30, batch_size=50)
  hp = epoch_lib.make_hparams(learning_rate=0.05)
  result = loop.fit(
    config, hp, device_blobs, early_stopping_patience=2, log=False
  )
  history = result.progress.history
  assert result.stopped_early and len(history) < 30
  best = max(h["val_accuracy"] for h in history)
  acc = float(
    epoch_lib.accuracy(result.params, device_blobs.x_val, device_blobs.y_val)
  )
  assert acc == pytest.approx(best)
