"""The fused C++ FFI CPU epoch equals ``train.train_epoch``.

Built with the system's g++ on first use (into a temporary cache here); the
tests skip, naming the reason, where it cannot be built.
"""

import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_f32_close, f32_tolerance

from linear_jax.checks import LinearJaxError
from linear_jax.kernels import cpu_epoch
from linear_jax.train import epoch as epoch_lib
from linear_jax.train import loop

N, D, C = 700, 40, 10


@pytest.fixture(scope="module")
def kernel():
  """Builds the kernel once per run (into the run's cache), or skips."""
  reason = cpu_epoch.available()
  if reason:
    pytest.skip(reason)


def toy_data(classes=C):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, D)).astype(np.float32)
  y = rng.integers(0, classes, N)
  return epoch_lib.DeviceData.put(x, y, x[:100], y[:100])


@pytest.mark.slow
@pytest.mark.parametrize(
  "reg,schedule,batch,threads,classes",
  [
    ("l2", "constant", 64, 2, 10),  # 10 steps, remainder rows dropped
    ("l2", "cosine", 50, 1, 10),  # one thread
    ("none", "step", 96, 3, 10),  # 3 threads, uneven row split
    ("l2", "constant", 64, 2, 3),  # few classes
    ("l2", "constant", 64, 2, 20),  # > 16 classes: the chunked forward
    ("l2", "constant", None, 2, 10),  # full batch
  ],
)
@pytest.mark.usefixtures("kernel")
def test_fused_epoch_equals_train_epoch(reg, schedule, batch, threads, classes):
  config = epoch_lib.TrainConfig(
    loss="softmax",
    reg=reg,
    optimizer="momentum",
    schedule=schedule,
    batch_size=batch,
    epochs=3,
  )
  hparams = epoch_lib.make_hparams(learning_rate=0.05, reg_strength=0.01)
  data = toy_data(classes)
  state = epoch_lib.init_state(config, hparams, 3, D, classes, N)
  want_fn = epoch_lib.make_epoch_fn(config)
  got_fn = cpu_epoch.fused_epoch(config, threads=threads)
  want, got = state, state
  for _ in range(3):
    want, want_metrics = want_fn(want, hparams, data)
    got, got_metrics = got_fn(got, hparams, data)
  assert float(jnp.max(jnp.abs(want.params["W"]))) > 1e-2  # it trained
  # Other summation orders (threads, 16 × 5 register blocks) through 3 epochs
  # of B-row gradient sums: ≤ 5.5e-5 of max|θ|; measured ≤ 2e-6, and a wrong
  # momentum, learning rate or step moves θ by > 1e-2.
  steps = 3 * (N // batch if batch else 1)
  rtol = f32_tolerance(batch or N, steps=steps)
  assert_f32_close(got.params["W"], want.params["W"], rtol)
  assert_f32_close(got.params["b"], want.params["b"], rtol)
  jax.tree.map(
    lambda a, b: assert_f32_close(a, b, rtol), got.opt_state, want.opt_state
  )
  np.testing.assert_array_equal(got.key, want.key)
  assert int(got.step) == int(want.step)
  for name in ("data_loss", "reg_loss"):  # means of N rows: same rule
    np.testing.assert_allclose(
      got_metrics[name], want_metrics[name], rtol=rtol, err_msg=name
    )
  # Accuracies: near-tied scores of random data may flip one example.
  rows = steps // 3 * (batch or N)
  np.testing.assert_allclose(
    got_metrics["train_accuracy"],
    want_metrics["train_accuracy"],
    rtol=0,
    atol=1.001 / rows,
  )
  np.testing.assert_allclose(
    got_metrics["val_accuracy"],
    want_metrics["val_accuracy"],
    rtol=0,
    atol=1.001 / len(data.y_val),
  )
  assert set(want_metrics) == {
    "data_loss",
    "reg_loss",
    "train_accuracy",
    "val_accuracy",
  }


@pytest.mark.slow
@pytest.mark.usefixtures("kernel")
def test_fit_with_the_fused_epoch_equals_fit():
  config = epoch_lib.TrainConfig(
    loss="softmax",
    optimizer="momentum",
    schedule="cosine",
    batch_size=64,
    epochs=2,
  )
  hparams = epoch_lib.make_hparams(learning_rate=0.05, reg_strength=0.01)
  data = toy_data()
  want = loop.fit(config, hparams, data, seed=1, log=False)
  got = loop.fit(
    config,
    hparams,
    data,
    seed=1,
    log=False,
    epoch_fn=cpu_epoch.fused_epoch(config),
  )
  # 2 epochs × 10 steps of 64-row gradient sums (the rule above).
  assert_f32_close(
    got.params["W"], want.params["W"], f32_tolerance(64, steps=2 * 10)
  )
  # At most one of the 100 validation examples may flip on rounding.
  np.testing.assert_allclose(
    [h["val_accuracy"] for h in got.progress.history],
    [h["val_accuracy"] for h in want.progress.history],
    rtol=0,
    atol=1.001 / len(data.y_val),
  )
  smoothed = epoch_lib.make_hparams(label_smoothing=0.1)
  with pytest.raises(LinearJaxError, match="no label smoothing"):
    loop.fit(
      config, smoothed, data, log=False, epoch_fn=cpu_epoch.fused_epoch(config)
    )


def test_builds_started_together_compile_once(tmp_path, monkeypatch):
  """Two builds at once: one compiles, the other waits on the lock and
  finds its library (without the lock both would compile).
  """
  cache, calls = tmp_path / "cache", tmp_path / "calls"
  # A compiler that takes long enough for the other build to reach the
  # lock, counts its runs and writes its output (-o PATH).
  compiler = tmp_path / "cxx"
  compiler.write_text(
    f"#!{sys.executable}\n"
    "import sys, time\n"
    "time.sleep(0.3)\n"
    f"open({str(calls)!r}, 'a').write('run\\n')\n"
    "open(sys.argv[sys.argv.index('-o') + 1], 'wb').write(b'library')\n"
  )
  compiler.chmod(0o755)
  monkeypatch.setenv("LINEAR_JAX_CACHE", str(cache))
  monkeypatch.setenv("CXX", str(compiler))
  start = threading.Barrier(2)
  paths = []

  def build():
    start.wait()
    paths.append(cpu_epoch.build())

  threads = [threading.Thread(target=build) for _ in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=60)
    assert not t.is_alive(), "a build never returned"
  assert calls.read_text() == "run\n"
  assert paths == [cpu_epoch.library_path()] * 2
  assert paths[0].read_bytes() == b"library"
  assert paths[0].parent == cache / "kernels"


def test_refuses_configurations_it_does_not_train_before_building():
  with pytest.raises(
    LinearJaxError,
    match="softmax with l2/none and momentum, got svm/l2/momentum",
  ):
    cpu_epoch.fused_epoch(epoch_lib.TrainConfig(loss="svm"))
  assert not cpu_epoch.supports(epoch_lib.TrainConfig(optimizer="adam"))
  assert cpu_epoch.supports(
    epoch_lib.TrainConfig(loss="softmax", optimizer="momentum", reg="none")
  )


@pytest.mark.slow
@pytest.mark.usefixtures("kernel")
def test_refuses_inputs_it_does_not_train():
  config = epoch_lib.TrainConfig(
    loss="softmax", optimizer="momentum", batch_size=64
  )
  raw = epoch_lib.DeviceData.put(
    np.zeros((N, D), np.uint8),
    np.zeros(N),
    np.zeros((10, D), np.uint8),
    np.zeros(10),
    shift=np.zeros(D),
  )
  hparams = epoch_lib.make_hparams()
  state = epoch_lib.init_state(config, hparams, 0, D, C, N)
  with pytest.raises(LinearJaxError, match="preprocessed float32 rows"):
    cpu_epoch.fused_epoch(config)(state, hparams, raw)
  smoothed = epoch_lib.make_hparams(label_smoothing=0.1)
  with pytest.raises(LinearJaxError, match="no label smoothing"):
    cpu_epoch.fused_epoch(config)(state, smoothed, toy_data())
