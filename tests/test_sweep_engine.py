"""run_sweep: equal to training alone, divergence isolated, one trace per
group, automatic chunks, and the same numbers sharded over 4 devices.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_f32_close, data_loss_atol, f32_tolerance

from linear_jax.data import load_dataset
from linear_jax.sweep import SweepGrid, memory, run_sweep
from linear_jax.train import epoch as epoch_lib
from linear_jax.train import loop

REPO = Path(__file__).resolve().parents[1]
# Batched (one wide matmul) against unbatched products: float rounding only,
# through 3 epochs × 25 minibatches of 64 blobs rows (each step sums a
# gradient over 64 rows): ≈ 8e-5 of max|W|; a wrong learning rate, λ, seed or
# a missed step moves W by > 1e-2 of max|W|.
RTOL = f32_tolerance(64, steps=3 * 25)
ABSURD_LR = 1e6
# The sweep with one absurd learning rate per (loss, λ): 2 × 2 × 3 = 12.
GRID = SweepGrid(
  losses=("svm", "softmax"),
  reg_strengths=(1e-4, 1.0),
  learning_rates=(1e-2, 1e-1, ABSURD_LR),
  epochs=3,
  batch_size=64,
)
# Without the absurd rate, svm only, two seeds, auto-chunked by a tiny budget.
SANE = SweepGrid(
  losses=("svm",),
  reg_strengths=(1e-4, 1.0),
  learning_rates=(1e-2, 1e-1),
  seeds=(0, 1),
  epochs=3,
  batch_size=64,
)


@pytest.fixture(scope="module")
def blobs():
  return load_dataset("blobs", seed=0)


@pytest.fixture(scope="module")
def full(blobs):
  return run_sweep(GRID, blobs, keep_params=True, log=False)


@pytest.fixture(scope="module")
def sane(blobs):
  """(result, number of traces of train_epoch, chunk limit)."""
  config = SANE.train_config("svm", "l2")
  per = memory.config_bytes(config, 2, 4, len(blobs.y_train), len(blobs.y_val))
  shared = memory.data_bytes(config, 2, len(blobs.y_train), len(blobs.y_val))
  traces = []
  original = epoch_lib.train_epoch

  def counting(*args, **kwargs):
    traces.append(1)
    return original(*args, **kwargs)

  epoch_lib.train_epoch = counting
  try:
    result = run_sweep(
      SANE,
      blobs,
      keep_params=True,
      log=False,
      budget_bytes=shared + 2 * per + per // 2,
    )
  finally:
    epoch_lib.train_epoch = original
  return result, len(traces)


def key(p):
  return (p.loss, p.reg_strength, p.learning_rate, p.seed)


def alone(blobs, p, epochs=3):
  """The configuration trained by itself, as experiments/train.py does."""
  config = epoch_lib.TrainConfig(
    loss=p.loss, reg=p.reg, optimizer="momentum", batch_size=64, epochs=epochs
  )
  hparams = epoch_lib.make_hparams(
    learning_rate=p.learning_rate,
    reg_strength=p.reg_strength,
    margin=1.0 if p.margin is None else p.margin,
  )
  data = epoch_lib.DeviceData.put(
    blobs.x_train, blobs.y_train, blobs.x_val, blobs.y_val
  )
  return loop.fit(
    config, hparams, data, seed=p.seed, num_classes=blobs.num_classes, log=False
  )


def loss_atol(blobs, p, params):
  """data_loss_atol for point p trained on blobs."""
  return data_loss_atol(
    params, blobs.x_train, blobs.y_train, RTOL, loss=p.loss, margin=p.margin
  )


@pytest.mark.slow
def test_absurd_learning_rate_diverges_and_is_reported(full):
  absurd = np.array([p.learning_rate == ABSURD_LR for p in full.points])
  assert absurd.sum() == 4
  np.testing.assert_array_equal(full.diverged, absurd)
  assert (full.diverged_epoch[absurd] == 1).all()
  # Diverged in epoch 1: no finite epoch to report.
  assert np.isnan(full.val_accuracy[absurd]).all()
  assert not np.isfinite(
    full.history["data_loss"][absurd, 0] + full.history["reg_loss"][absurd, 0]
  ).any()
  # The others learned the separable blobs.
  assert (full.val_accuracy[~absurd] >= 0.99).all()
  assert np.isfinite(full.params["W"][~absurd]).all()
  # Best: highest val accuracy, ties to the first in grid order, never diverged.
  assert full.best == {"svm": 0, "softmax": 6}
  assert set(full.best_params) == {"svm", "softmax"}
  for loss, i in full.best.items():
    np.testing.assert_array_equal(
      full.best_params[loss]["W"], full.params["W"][i]
    )


@pytest.mark.slow
def test_diverged_configuration_leaves_the_others_unchanged(blobs, full, sane):
  result, _ = sane
  by_key = {key(p): p.index for p in full.points}
  compared = 0
  for p in result.points:
    if p.seed != 0:
      continue
    i = by_key[key(p)]
    params = {"W": full.params["W"][i], "b": full.params["b"][i]}
    assert_f32_close(result.params["W"][p.index], params["W"], RTOL)
    assert_f32_close(result.params["b"][p.index], params["b"], RTOL)
    # Chunks of 2 against one of 12: other matmul widths, other rounding; at
    # most one validation example may flip.
    assert abs(result.val_accuracy[p.index] - full.val_accuracy[i]) <= 1 / len(
      blobs.y_val
    )
    np.testing.assert_allclose(
      result.data_loss[p.index],
      full.data_loss[i],
      rtol=RTOL,
      atol=loss_atol(blobs, p, params),
    )
    compared += 1
  assert compared == 4


def test_one_trace_per_group_all_chunks_and_seeds_reuse_it(sane):
  result, traces = sane
  # 2 seeds × 4 configurations, at most 2 per chunk: 4 chunks × 3 epochs.
  assert result.chunk_size == 2
  assert [c["length"] for c in result.chunks] == [2, 2, 2, 2]
  assert [c["group"] for c in result.chunks] == ["svm/l2 seed 0"] * 2 + [
    "svm/l2 seed 1"
  ] * 2
  assert traces == 1
  assert not result.diverged.any()


@pytest.mark.slow
def test_seeds_reseed_the_permutations(blobs, sane):
  result, _ = sane
  by_key = {key(p): p.index for p in result.points}
  w0 = result.params["W"][by_key[("svm", 1e-4, 0.1, 0)]]
  w1 = result.params["W"][by_key[("svm", 1e-4, 0.1, 1)]]
  assert np.abs(w0 - w1).max() > 1e-3
  p = result.points[by_key[("svm", 1e-4, 0.1, 1)]]
  single = alone(blobs, p)
  assert_f32_close(w1, single.params["W"], RTOL)


@pytest.mark.slow
@pytest.mark.parametrize(
  "index", [1, 9]
)  # svm λ=1e-4 lr=0.1; softmax λ=1 lr=0.01
def test_each_configuration_equals_training_it_alone(blobs, full, index):
  p = full.points[index]
  assert (p.loss, p.learning_rate) == (
    ("svm", 0.1) if index == 1 else ("softmax", 0.01)
  )
  single = alone(blobs, p)
  assert single.diverged_epoch is None
  assert_f32_close(full.params["W"][index], single.params["W"], RTOL)
  assert_f32_close(full.params["b"][index], single.params["b"], RTOL)
  last = single.progress.history[-1]
  # At most one validation example may flip on float rounding.
  assert abs(full.val_accuracy[index] - last["val_accuracy"]) <= 1 / len(
    blobs.y_val
  )
  np.testing.assert_allclose(
    full.data_loss[index],
    last["data_loss"],
    rtol=RTOL,
    atol=loss_atol(blobs, p, single.params),
  )
  # λ‖W‖²/2: twice W's relative error.
  np.testing.assert_allclose(
    full.reg_loss[index], last["reg_loss"], rtol=2 * RTOL
  )
  np.testing.assert_allclose(
    full.history["val_accuracy"][index],
    [h["val_accuracy"] for h in single.progress.history],
    atol=1 / 400,
  )


FOUR_DEVICES = textwrap.dedent("""
    import json, re, sys
    import jax, numpy as np
    from linear_jax.train import epoch as epoch_lib
    from linear_jax.data import load_dataset
    from linear_jax.sweep import SweepGrid, distributed, engine, run_sweep
    grid = SweepGrid(**json.loads(sys.argv[2]))
    ds = load_dataset("blobs", seed=0)
    result = run_sweep(grid, ds, keep_params=True, log=False)
    mesh = distributed.config_mesh()
    data = epoch_lib.DeviceData(*(distributed.put_global(
        np.asarray(a), distributed.replicated(mesh))
        for a in (ds.x_train, ds.y_train, ds.x_val, ds.y_val)))
    program = engine.build_program(grid.train_config("svm", "l2"), 8, mesh,
                                   data, 4)
    text = program.epoch.as_text()
    np.savez(sys.argv[1], W=result.params["W"], b=result.params["b"],
             val=result.val_accuracy, diverged=result.diverged_epoch)
    print(json.dumps({
        "devices": len(result.devices), "chunks": result.chunks,
        "w_spec": list(program.epoch.input_shardings[0][0].params["W"].spec),
        "collectives": sorted(set(re.findall(
            "all-reduce|all-gather|collective-permute|all-to-all", text))),
        "dots": sorted(set(re.findall(r"f32\\[(\\d+,\\d+)\\]\\S* dot\\(", text)))}))
""")


@pytest.mark.slow
def test_four_devices_shard_the_configurations_same_results(tmp_path, full):
  env = dict(
    os.environ,
    JAX_PLATFORMS="cpu",
    XLA_FLAGS=os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=4",
  )
  spec = dict(
    losses=["svm"],
    reg_strengths=[1e-4, 1.0],
    learning_rates=[1e-2, 1e-1, ABSURD_LR],
    epochs=3,
    batch_size=64,
  )
  out = tmp_path / "four.npz"
  proc = subprocess.run(
    [sys.executable, "-c", FOUR_DEVICES, str(out), json.dumps(spec)],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=240,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  info = json.loads(proc.stdout.strip().splitlines()[-1])
  assert info["devices"] == 4
  # 6 configurations padded to 8 = 2 per device; padding dropped.
  assert info["chunks"] == [
    {
      "group": "svm/l2 seed 0",
      "chunk": 1,
      "configs": 6,
      "padding": 2,
      "length": 8,
      "algorithm": "vmap",
    }
  ]
  assert info["w_spec"] == ["config"]
  assert info["collectives"] == []  # no communication inside an epoch
  # Per device: one [64, 2·4] minibatch matmul for its 2 configurations.
  assert "64,8" in info["dots"]
  four = np.load(out)
  svm = np.array([p.loss == "svm" for p in full.points])
  assert four["W"].shape == (6, 2, 4)
  np.testing.assert_array_equal(four["diverged"], full.diverged_epoch[svm])
  ok = four["diverged"] == 0
  assert_f32_close(four["W"][ok], full.params["W"][svm][ok], RTOL)
  assert_f32_close(four["b"][ok], full.params["b"][svm][ok], RTOL)
  # [64, 2·4] matmuls per device against [64, 12·4]: at most one flip.
  np.testing.assert_allclose(
    four["val"][ok], full.val_accuracy[svm][ok], rtol=0, atol=1 / 400
  )


@pytest.mark.slow
def test_a_chunk_size_above_the_memory_model_is_warned_about(blobs, caplog):
  config = SANE.train_config("svm", "l2")
  per = memory.config_bytes(config, 2, 4, len(blobs.y_train), len(blobs.y_val))
  shared = memory.data_bytes(config, 2, len(blobs.y_train), len(blobs.y_val))
  grid = SweepGrid(
    losses=("svm",),
    reg_strengths=(1e-4,),
    learning_rates=(1e-2, 1e-1),
    epochs=1,
    batch_size=64,
  )
  with caplog.at_level("WARNING"):
    run_sweep(
      grid, blobs, log=False, chunk_size=2, budget_bytes=shared + per + per // 2
    )  # the model fits 1
  warned = [
    r.getMessage()
    for r in caplog.records
    if "--chunk_size 2 is above the 1 configurations" in r.getMessage()
  ]
  assert len(warned) == 1, [r.getMessage() for r in caplog.records]
  caplog.clear()
  with caplog.at_level("WARNING"):
    run_sweep(
      grid,
      blobs,
      log=False,
      chunk_size=2,
      budget_bytes=shared + 2 * per + per // 2,
    )  # fits 2: silent
  assert not [r for r in caplog.records if "--chunk_size" in r.getMessage()]


@pytest.mark.slow
def test_sparse_rows_sweep_equals_training_alone():
  """One copy of CSR rows serves every configuration (vmap): each equals
  its own run; the blocked algorithm, dense only, is refused in one line.
  """
  from linear_jax import LinearJaxError  # pylint: disable=g-import-not-at-top
  from linear_jax.data import distributions, from_arrays  # pylint: disable=g-import-not-at-top

  spec = distributions.sparse_text(
    "news20", num_features=800, num_classes=3, topic_words=100
  )
  x, y, xt, yt = spec.splits(0, train_size=500, test_size=100)
  data = from_arrays(x, y, xt, yt, validation_size=100)
  assert data.is_sparse
  grid = SweepGrid(
    losses=("svm",),
    reg_strengths=(1e-4, 1e-2),
    learning_rates=(0.3, 1.0),
    epochs=2,
    batch_size=64,
  )
  result = run_sweep(grid, data, keep_params=True, log=False)
  assert result.memory["shared_bytes"] < data.x_train.nnz * 8 * 2
  config = grid.train_config("svm", "l2")
  device = epoch_lib.DeviceData.put(
    data.x_train, data.y_train, data.x_val, data.y_val
  )
  for p in result.points:
    hp = epoch_lib.make_hparams(
      learning_rate=p.learning_rate, reg_strength=p.reg_strength
    )
    alone = loop.fit(config, hp, device, seed=0, num_classes=3, log=False)
    assert_f32_close(
      result.params["W"][p.index],
      alone.params["W"],
      f32_tolerance(64, steps=14),
    )
  with pytest.raises(
    LinearJaxError, match="blocked sweep algorithm needs dense"
  ):
    run_sweep(grid, data, algorithm="blocked", log=False)
