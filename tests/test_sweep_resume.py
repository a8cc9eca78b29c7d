"""linear_jax.sweep.resume: an interrupted sweep resumes to exactly the
numbers of one never interrupted, in the library and through the binary
killed with SIGKILL at random moments.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import binary_env, run_binary

from linear_jax.checks import LinearJaxError
from linear_jax.data import load_dataset
from linear_jax.sweep import SweepGrid, engine, resume, run_sweep

REPO = Path(__file__).resolve().parents[1]
# 2 losses × 2 λ × 2 lr × 2 seeds = 16 configurations in chunks of 2.
GRID = SweepGrid(
  losses=("svm", "softmax"),
  reg_strengths=(1e-4, 1e-1),
  learning_rates=(1e-2, 1e5),
  seeds=(0, 1),
  epochs=3,
  batch_size=64,
)


@pytest.fixture(scope="module")
def blobs():
  return load_dataset("blobs", seed=0)


@pytest.fixture(scope="module")
def uninterrupted(blobs):
  return run_sweep(GRID, blobs, chunk_size=2, keep_params=True, log=False)


class Interrupt(Exception):
  pass


def assert_same(a, b):
  for name in engine.METRICS:
    np.testing.assert_array_equal(a.history[name], b.history[name])
  np.testing.assert_array_equal(a.val_accuracy, b.val_accuracy)
  np.testing.assert_array_equal(a.diverged_epoch, b.diverged_epoch)
  assert a.best == b.best
  for loss in a.best:
    for k in ("W", "b"):
      np.testing.assert_array_equal(
        a.best_params[loss][k], b.best_params[loss][k]
      )
  np.testing.assert_array_equal(a.params["W"], b.params["W"])


@pytest.mark.slow
@pytest.mark.parametrize("stop_after", [1, 12, 23])
def test_interrupted_sweep_resumes_to_the_same_numbers(
  blobs, uninterrupted, tmp_path, monkeypatch, stop_after
):
  """Stops after ``stop_after`` epoch records (inside chunks and at their
  ends), checkpointing every epoch, then resumes.
  """
  path = str(tmp_path / resume.CHECKPOINT_NAME)
  calls = []
  original = engine._Sweep.record

  def record(self, *args):
    if len(calls) == stop_after:
      raise Interrupt
    calls.append(1)
    return original(self, *args)

  monkeypatch.setattr(engine._Sweep, "record", record)
  with pytest.raises(Interrupt):
    run_sweep(
      GRID,
      blobs,
      chunk_size=2,
      keep_params=True,
      log=False,
      checkpoint_path=path,
      checkpoint_seconds=0,
    )
  monkeypatch.setattr(engine._Sweep, "record", original)
  assert os.path.exists(path)
  epochs_left = []
  monkeypatch.setattr(
    engine._Sweep,
    "record",
    lambda self, *a: (epochs_left.append(1), original(self, *a))[1],
  )
  resumed = run_sweep(
    GRID,
    blobs,
    chunk_size=2,
    keep_params=True,
    log=False,
    checkpoint_path=path,
    checkpoint_seconds=0,
  )
  assert_same(resumed, uninterrupted)
  # Nothing finished was recomputed: 16 configurations × 3 epochs in chunks
  # of 2 is 24 epoch records in all.
  assert len(epochs_left) == 24 - stop_after
  assert resumed.train_seconds > 0


@pytest.mark.slow
def test_checkpoints_follow_the_clock_not_the_chunks(
  blobs, uninterrupted, tmp_path, monkeypatch
):
  """Each save rewrites every configuration's history: with many chunks a
  save per chunk cost chunks × size. Saved at most every checkpoint_seconds
  and after the last chunk.
  """
  saves = []
  original = resume.SweepCheckpoint.save
  monkeypatch.setattr(
    resume.SweepCheckpoint,
    "save",
    lambda self, *a: (saves.append(1), original(self, *a))[1],
  )
  path = tmp_path / resume.CHECKPOINT_NAME
  result = run_sweep(
    GRID,
    blobs,
    chunk_size=2,
    keep_params=True,
    log=False,
    checkpoint_path=str(path),
    checkpoint_seconds=3600,
  )
  assert len(result.chunks) == 8 and len(saves) == 1
  assert_same(result, uninterrupted)
  # The one save holds the finished sweep: resuming recomputes nothing.
  records = []
  monkeypatch.setattr(
    engine._Sweep, "record", lambda self, *a: records.append(1)
  )
  again = run_sweep(
    GRID,
    blobs,
    chunk_size=2,
    keep_params=True,
    log=False,
    checkpoint_path=str(path),
  )
  assert records == [] and again.best == uninterrupted.best


@pytest.mark.slow
def test_an_automatic_chunk_size_resumes_as_it_started(
  blobs, tmp_path, monkeypatch
):
  """The automatic chunk size follows the free memory, which changes between
  a kill and its resume: the resumed sweep takes the checkpoint's chunking.
  """
  from linear_jax.sweep import memory

  config = GRID.train_config("svm", "l2")
  num_train, num_features = blobs.x_train.shape
  per = memory.config_bytes(
    config, num_features, blobs.num_classes, num_train, len(blobs.y_val)
  )
  shared = memory.data_bytes(config, num_features, num_train, len(blobs.y_val))
  small, large = shared + 3 * per + 1, shared + 6 * per + 1
  path = str(tmp_path / resume.CHECKPOINT_NAME)
  original = engine._Sweep.record
  calls = []

  def record(self, *args):
    if len(calls) == 2:
      raise Interrupt
    calls.append(1)
    return original(self, *args)

  monkeypatch.setattr(engine._Sweep, "record", record)
  with pytest.raises(Interrupt):
    run_sweep(
      GRID,
      blobs,
      budget_bytes=small,
      log=False,
      checkpoint_path=path,
      checkpoint_seconds=0,
    )
  monkeypatch.setattr(engine._Sweep, "record", original)
  resumed = run_sweep(
    GRID, blobs, budget_bytes=large, log=False, checkpoint_path=path
  )
  assert resumed.chunk_size == 3
  fresh = run_sweep(GRID, blobs, budget_bytes=small, log=False)
  for name in engine.METRICS:
    np.testing.assert_array_equal(resumed.history[name], fresh.history[name])


def test_a_sweep_whose_checkpoint_cannot_fit_on_disk_is_refused(
  tmp_path, monkeypatch
):
  import collections
  import shutil

  from linear_jax.sweep import experiment

  usage = collections.namedtuple("usage", "total used free")
  monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(1, 1, 10**6))
  config = experiment.SweepRunConfig(
    reg_strengths=tuple(np.linspace(0, 1, 100)),
    learning_rates=tuple(np.linspace(1e-3, 1, 100)),
    epochs=20,
    workdir=str(tmp_path / "new" / "sweep"),
  )
  with pytest.raises(LinearJaxError) as e:
    experiment.check_disk(config, config.grid())
  message = str(e.value)
  assert "20,000 configurations" in message and "1000000 bytes free" in message
  assert f"on {tmp_path}" in message and "checkpoint" in message
  assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_a_checkpoint_of_another_sweep_is_refused(blobs, tmp_path):
  path = str(tmp_path / resume.CHECKPOINT_NAME)
  small = SweepGrid(
    losses=("svm",),
    reg_strengths=(1e-4,),
    learning_rates=(1e-2,),
    epochs=1,
    batch_size=64,
  )
  run_sweep(small, blobs, log=False, checkpoint_path=path)
  other = SweepGrid(
    losses=("svm",),
    reg_strengths=(1e-3,),
    learning_rates=(1e-2,),
    epochs=1,
    batch_size=64,
  )
  with pytest.raises(LinearJaxError, match="different sweep"):
    run_sweep(other, blobs, log=False, checkpoint_path=path)


def test_a_torn_checkpoint_is_one_line(blobs, tmp_path):
  path = tmp_path / resume.CHECKPOINT_NAME
  path.write_bytes(b"PK\x03\x04 torn")
  with pytest.raises(LinearJaxError, match="cannot read the sweep checkpoint"):
    run_sweep(GRID, blobs, log=False, checkpoint_path=str(path))


def test_data_digest_sees_one_changed_value():
  x = np.zeros((4, 3), np.float32)
  y = x.copy()
  y[2, 1] = 1e-30
  assert resume.data_digest(x) != resume.data_digest(y)
  assert resume.data_digest(x) == resume.data_digest(x.copy())


# The binary, killed at random moments with SIGKILL.
ARGS = [
  "--dataset=digits",
  "--losses=svm,softmax",
  "--reg_strengths=1e-4,1e-2",
  "--learning_rates=1e-2,1e-1",
  "--seeds=0,1",
  "--epochs=4",
  "--batch_size=32",
  "--chunk_size=2",
  "--checkpoint_seconds=0",
  "--plots=false",
]


def sweep_cmd(workdir, *extra):
  return [
    sys.executable,
    "-m",
    "experiments.sweep",
    *ARGS,
    f"--workdir={workdir}",
    *extra,
  ]


def sweep_binary(workdir, *extra, timeout, fresh=False):
  """The sweep binary, run to its end (conftest.run_binary)."""
  return run_binary(
    "experiments.sweep",
    *ARGS,
    f"--workdir={workdir}",
    *extra,
    timeout=timeout,
    fresh=fresh,
  )


@pytest.mark.slow
def test_binary_killed_at_random_points_resumes_bit_for_bit(tmp_path):
  reference = tmp_path / "reference"
  proc = sweep_binary(reference, timeout=300, fresh=True)
  assert proc.returncode == 0, proc.stderr[-2000:]
  # 16 configurations in chunks of 2 × 4 epochs: 32 epoch log lines.
  rng = np.random.default_rng(0)
  for trial, target in enumerate(
    rng.choice(np.arange(1, 32), 2, replace=False)
  ):
    workdir = tmp_path / f"killed{trial}"
    child = subprocess.Popen(
      sweep_cmd(workdir),
      cwd=REPO,
      env=binary_env(),
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
    )
    seen = 0
    for line in child.stderr:  # SIGKILL right after the target-th epoch
      seen += " epoch " in line and "configs +" in line
      if seen == target:
        child.send_signal(signal.SIGKILL)
        break
    child.wait()
    assert seen == target
    proc = sweep_binary(workdir, "--resume", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming the sweep" in proc.stderr
    for name in ("results.csv", "history.csv"):
      assert (workdir / name).read_bytes() == (reference / name).read_bytes(), (
        f"{name} differs after a kill after epoch line {target}"
      )
    assert not [p for p in os.listdir(workdir) if p.startswith(".tmp-")]


@pytest.mark.slow
def test_binary_refuses_a_second_sweep_without_resume(tmp_path):
  workdir = tmp_path / "wd"
  workdir.mkdir()
  (workdir / resume.CHECKPOINT_NAME).write_bytes(b"x")
  proc = sweep_binary(workdir, timeout=120)
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert "Traceback" not in proc.stderr
  assert "pass --resume" in lines[-1]
  assert (workdir / resume.CHECKPOINT_NAME).read_bytes() == b"x"


@pytest.mark.slow
def test_resume_without_a_checkpoint_keeps_earlier_results(tmp_path):
  workdir = tmp_path / "wd"
  workdir.mkdir()
  (workdir / "results.csv").write_text("mine")
  proc = sweep_binary(workdir, "--resume", timeout=120)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "but no sweep_checkpoint.npz" in proc.stderr.strip().splitlines()[-1]
  assert (workdir / "results.csv").read_text() == "mine"
