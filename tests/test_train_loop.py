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
  # The l2 step W ← (1 − 2ηλ) W grows 2·10⁴-fold per step: inf in epoch 3.
  huge = epoch_lib.make_hparams(learning_rate=1e6, reg_strength=1e-2)
  result = loop.fit(
    config, huge, device_blobs, progress=good.progress, log=False
  )
  assert result.diverged_epoch == 3
  assert "epoch 3" in result.divergence_message
  assert "learning rate 1e+06 is too large" in result.divergence_message
  assert len(result.progress.history) == 2
  assert np.all(np.isfinite(result.params["W"]))


@pytest.mark.parametrize("rate", [1e300, float("inf"), -1.0])
def test_learning_rates_beyond_the_rule_are_refused(rate):
  with pytest.raises(lj.LinearJaxError, match="learning_rate must be in"):
    epoch_lib.make_hparams(learning_rate=rate)


@pytest.mark.slow
def test_divergence_on_large_features_names_the_feature(device_blobs):
  x = np.array(device_blobs.x_train, np.float32)
  x[:, 2] *= 1e30
  data = device_blobs._replace(x_train=x)
  config = epoch_lib.TrainConfig(epochs=3, batch_size=50)
  result = loop.fit(
    config, epoch_lib.make_hparams(learning_rate=0.01), data, log=False
  )
  message = result.divergence_message
  assert result.diverged_epoch is not None
  assert "feature 2" in message and "--standardize" in message
  assert "try" not in message


@pytest.mark.slow
def test_divergence_on_sparse_rows_names_the_feature(device_blobs):
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  x = np.array(device_blobs.x_train, np.float32)
  x[np.abs(x) < 0.5] = 0.0
  x[:, 3] *= 1e30
  csr = scipy.sparse.csr_matrix(x)
  data = epoch_lib.DeviceData.put(
    csr, device_blobs.y_train, csr[:1], device_blobs.y_train[:1]
  )
  scale = loop.feature_scale(data)
  column = np.abs(x).max(axis=0)
  assert scale.feature == 3 and scale.max_abs == pytest.approx(column[3])
  assert scale.max_sq_norm == pytest.approx(
    np.max(np.sum(x.astype(np.float64) ** 2, axis=1)), rel=1e-6
  )
  result = loop.fit(
    epoch_lib.TrainConfig(epochs=3, batch_size=50),
    epoch_lib.make_hparams(learning_rate=0.01),
    data,
    log=False,
  )
  assert result.diverged_epoch is not None
  assert "feature 3" in result.divergence_message


def test_divergence_cause_never_advises_a_useless_rate():
  unit = loop.FeatureScale(max_abs=3.0, feature=0, max_sq_norm=20.0)
  large = loop.FeatureScale(max_abs=1e20, feature=4, max_sq_norm=1e41)
  cause = lambda lr, opt, scale: loop.divergence_cause(
    learning_rate=lr, optimizer=opt, scale=scale
  )
  assert "below about 0.05" in cause(1.0, "sgd", unit)
  assert "try 0.001" in cause(0.01, "momentum", unit)
  for text in (
    cause(1e-40, "sgd", unit),
    cause(1e-40, "sgd", large),
    cause(0.01, "lbfgs", unit),
  ):
    assert "try" not in text and "below about" not in text
  assert "feature 4" in cause(1e-40, "sgd", large)
  assert "no learning rate" in cause(0.01, "lbfgs", large)


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


@pytest.mark.slow
def test_early_stopping_needs_validation_data(device_blobs):
  config = epoch_lib.TrainConfig(epochs=30, batch_size=50)
  hp = epoch_lib.make_hparams(learning_rate=0.05)
  no_val = device_blobs._replace(
    x_val=device_blobs.x_val[:0], y_val=device_blobs.y_val[:0]
  )
  with pytest.raises(lj.LinearJaxError, match="validation split is empty"):
    loop.fit(config, hp, no_val, early_stopping_patience=5, log=False)
  result = loop.fit(config, hp, no_val, log=False)  # without: all 30 epochs
  assert len(result.progress.history) == 30 and not result.stopped_early
