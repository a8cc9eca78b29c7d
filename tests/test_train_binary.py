"""experiments/train.py and the main job, end to end, as a user runs them."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import binary_env, slow_except

from linear_jax import io
from linear_jax.train import checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_end_to_end_then_restore(tmp_path, run_module):
  workdir = tmp_path / "blobs"
  proc = run_module(
    "experiments.train",
    "--dataset=blobs",
    "--loss=svm",
    "--epochs=3",
    "--batch_size=64",
    "--learning_rate=0.05",
    f"--workdir={workdir}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "epoch 3/3" in proc.stderr and "examples/s" in proc.stderr
  files = sorted(p.name for p in workdir.iterdir())
  assert files == [
    "checkpoint.npz",
    "curves.png",
    "metrics.jsonl",
    "regions.png",
    "summary.json",
  ]
  summary = json.loads((workdir / "summary.json").read_text())
  for key in (
    "test_accuracy",
    "val_accuracy",
    "train_seconds",
    "compile_seconds",
    "config",
    "device",
  ):
    assert key in summary
  assert summary["test_accuracy"] >= 0.95
  assert summary["config"]["loss"] == "svm"
  rows = [
    json.loads(line)
    for line in (workdir / "metrics.jsonl").read_text().splitlines()
  ]
  assert [r["epoch"] for r in rows] == [1, 2, 3]
  proc = run_module("experiments.train", f"--workdir={workdir}", "--restore")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert (
    json.loads(proc.stdout.strip().splitlines()[-1])["test_accuracy"]
    == summary["test_accuracy"]
  )


@pytest.mark.slow
def test_flagfile_then_command_line_override(tmp_path, run_module):
  flagfile = REPO / "experiments/flags/cifar10_softmax.flags"
  proc = run_module(
    "experiments.train",
    f"--flagfile={flagfile}",
    "--dataset=hard_ring",
    "--nomirror_train",
    "--epochs=1",
    "--learning_rate=0.1",
    f"--workdir={tmp_path / 'ring'}",
    "--noplots",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  summary = json.loads((tmp_path / "ring" / "summary.json").read_text())
  assert summary["config"]["dataset"] == "hard_ring"
  assert summary["config"]["loss"] == "softmax"  # from the flagfile
  assert summary["config"]["batch_size"] == 256


@pytest.mark.parametrize(
  "flag,words",
  slow_except(
    [
      ("--loss=hinge", "should be one of"),
      ("--reg=l3", "should be one of"),
      ("--optimizer=rmsprop", "should be one of"),
      ("--dataset=no_such_set", "unknown dataset"),
      ("--reg_strength=-1", "reg_strength must be ≥ 0"),
      ("--seed=-1", "seed must be in [0, 4294967295]"),
      ("--batch_size=0", "batch_size must be ≥ 1"),
      ("--learning_rate=1e300", "learning_rate must be in (0, 1000000]"),
      ("--dataset=folder:/no/such/dir", "/no/such/dir"),
    ],
    ("--reg_strength=-1", "reg_strength must be ≥ 0"),
  ),
)
def test_bad_flags_exit_nonzero_with_one_line(
  flag, words, tmp_path, run_module
):
  proc = run_module(
    "experiments.train",
    flag,
    f"--workdir={tmp_path / 'w'}",
    "--epochs=1",
    timeout=120,
  )
  assert proc.returncode != 0
  errors = [
    line for line in proc.stderr.splitlines() if line.startswith("error:")
  ]
  assert len(errors) == 1 and words in errors[0], proc.stderr[-1500:]
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "w" / "checkpoint.npz").exists()


@pytest.mark.slow
def test_planted_symlinks_are_never_followed(tmp_path, run_module):
  workdir = tmp_path / "wd"
  workdir.mkdir()
  victims = {}
  for name in (
    "metrics.jsonl.tmp",
    "summary.json.tmp",
    "checkpoint.npz.tmp",
    "curves.png.tmp",
  ):
    victim = tmp_path / f"victim-{name}"
    victim.write_text("mine")
    (workdir / name).symlink_to(victim)
    victims[name] = victim
  proc = run_module(
    "experiments.train", "--dataset=blobs", "--epochs=2", f"--workdir={workdir}"
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  for name, victim in victims.items():
    assert victim.read_text() == "mine", name
  for name in ("metrics.jsonl", "summary.json", "checkpoint.npz", "curves.png"):
    assert not (workdir / name).is_symlink(), name
  json.loads((workdir / "summary.json").read_text())
  # A symlink planted at the appended file itself is refused, not followed.
  workdir2 = tmp_path / "wd2"
  workdir2.mkdir()
  victim = tmp_path / "victim-metrics"
  victim.write_text("mine")
  (workdir2 / "metrics.jsonl").symlink_to(victim)
  proc = run_module(
    "experiments.train",
    "--dataset=blobs",
    "--epochs=1",
    f"--workdir={workdir2}",
  )
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert victim.read_text() == "mine"


@pytest.mark.slow
def test_resume_with_another_optimizer_is_one_line(tmp_path, run_module):
  workdir = tmp_path / "wd"
  proc = run_module(
    "experiments.train",
    "--dataset=blobs",
    "--epochs=1",
    "--noplots",
    f"--workdir={workdir}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  proc = run_module(
    "experiments.train",
    "--dataset=blobs",
    "--epochs=2",
    "--optimizer=adam",
    "--resume",
    f"--workdir={workdir}",
  )
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  errors = [
    line for line in proc.stderr.splitlines() if line.startswith("error:")
  ]
  assert len(errors) == 1 and "optimizer='momentum'" in errors[0]


@pytest.mark.slow
def test_main_job_trains_both_and_prints_table(tmp_path, run_module):
  proc = run_module(
    "experiments.main_job", f"--workdir={tmp_path}", "--epochs=5"
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = proc.stdout
  assert "svm" in table and "softmax" in table and "test acc" in table
  for name in ("svm", "softmax"):
    assert (tmp_path / name / "templates.png").exists()
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.85


@pytest.mark.slow
def test_killed_run_resumes_bit_identical(tmp_path, run_module):
  """SIGKILL mid-run, then --resume: the same arrays and metrics as a run
  never killed, and no temporaries left behind.
  """
  args = ["--dataset=blobs", "--epochs=150", "--batch_size=16", "--noplots"]
  proc = run_module(  # a fresh process: the resumed run is a fork
    "experiments.train", *args, f"--workdir={tmp_path / 'a'}", fresh=True
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  workdir = tmp_path / "b"
  killed = subprocess.Popen(
    [sys.executable, "-m", "experiments.train", *args, f"--workdir={workdir}"],
    cwd=REPO,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  metrics = workdir / "metrics.jsonl"
  deadline = time.time() + 200
  while (
    time.time() < deadline
    and killed.poll() is None
    and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3)
  ):
    time.sleep(0.01)
  killed.send_signal(signal.SIGKILL)
  killed.wait()
  assert not (workdir / "summary.json").exists()  # killed mid-run
  # The checkpoint (every 60 s) is older than the last metrics lines.
  meta = checkpoint.load_metadata(str(workdir / "checkpoint.npz"))
  assert meta["epoch"] < len(metrics.read_text().splitlines())
  proc = run_module(
    "experiments.train", *args, "--resume", f"--workdir={workdir}"
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  a, b = (np.load(tmp_path / name / "checkpoint.npz") for name in "ab")
  for key in a.files:
    if key != "metadata_json":
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  strip = lambda path: [
    {
      k: v
      for k, v in json.loads(line).items()
      if k not in ("seconds", "examples_per_second")
    }
    for line in path.read_text().splitlines()
  ]
  assert strip(metrics) == strip(tmp_path / "a" / "metrics.jsonl")
  assert sorted(p.name for p in workdir.iterdir()) == [
    "checkpoint.npz",
    "metrics.jsonl",
    "summary.json",
  ]


def start_train(*args):
  # A suite started in the background (``make test &``, nohup) inherits
  # SIGINT ignored, and a process that starts with SIGINT ignored keeps
  # ignoring it (POSIX; Python installs no handler then). A handled signal
  # is reset to the default on exec, so with a handler here while the child
  # starts it gets SIGINT's default, as a program started from a terminal.
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    return subprocess.Popen(
      [sys.executable, "-m", "experiments.train", *args],
      cwd=REPO,
      env=binary_env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
  finally:
    signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_two_runs_started_together_on_one_workdir(tmp_path):
  """Exactly one trains; the other is refused in one line naming the
  holder's PID and host, and metrics.jsonl holds one run's lines.
  """
  workdir = tmp_path / "shared"
  args = [
    "--dataset=blobs",
    "--epochs=40",
    "--batch_size=16",
    "--noplots",
    f"--workdir={workdir}",
  ]
  procs = [start_train(*args) for _ in range(2)]
  outputs = [p.communicate(timeout=240) for p in procs]
  codes = [p.returncode for p in procs]
  assert sorted(codes) == [0, 1], [err[-1500:] for _, err in outputs]
  winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
  errors = [
    line for line in outputs[loser][1].splitlines() if line.startswith("error:")
  ]
  assert len(errors) == 1 and "Traceback" not in outputs[loser][1]
  assert errors[0].startswith(
    f"error: {workdir} is in use by PID {procs[winner].pid} on "
    f"{socket.gethostname()}"
  ), errors
  rows = [
    json.loads(line)
    for line in (workdir / "metrics.jsonl").read_text().splitlines()
  ]
  assert [r["epoch"] for r in rows] == list(range(1, 41))
  assert sorted(p.name for p in workdir.iterdir()) == [
    "checkpoint.npz",
    "metrics.jsonl",
    "summary.json",
  ]


@pytest.mark.slow
def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path, run_module):
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  workdir = tmp_path / "wd"
  workdir.mkdir()
  (workdir / ".lock").write_text(
    json.dumps({"pid": dead.pid, "host": socket.gethostname()})
  )
  proc = run_module(
    "experiments.train",
    "--dataset=blobs",
    "--epochs=1",
    "--noplots",
    f"--workdir={workdir}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  notes = [line for line in proc.stderr.splitlines() if "took over" in line]
  assert len(notes) == 1 and f"PID {dead.pid} on " in notes[0]
  assert not (workdir / ".lock").exists()


def wait_for_lines(path, count, proc, timeout=200):
  """Polls until ``path`` has ``count`` lines or ``proc`` ends."""
  deadline = time.time() + timeout
  while (
    time.time() < deadline
    and proc.poll() is None
    and (not path.exists() or len(path.read_text().splitlines()) < count)
  ):
    time.sleep(0.01)


@pytest.mark.slow
def test_sigterm_and_sigint_save_the_epoch_and_resume_identically(
  tmp_path, run_module
):
  """Either signal: one line, exit 1, the checkpoint saved at the epoch the
  run reached (not the last cadence one), and --resume ends bit-identical
  to a run never stopped.
  """
  epochs = 1500
  args = [
    "--dataset=blobs",
    # Long enough (over a second of epochs after the 5 each stop waits
    # for, against the 10 ms poll) that each signal lands mid-run.
    f"--epochs={epochs}",
    "--batch_size=16",
    "--noplots",
    "--checkpoint_seconds=3600",
  ]
  proc = run_module(  # a fresh process: the resumed run is a fork
    "experiments.train", *args, f"--workdir={tmp_path / 'a'}", fresh=True
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  workdir = tmp_path / "b"
  metrics = workdir / "metrics.jsonl"
  done = 0
  for number in (signal.SIGTERM, signal.SIGINT):
    stopped = start_train(
      *args, f"--workdir={workdir}", *(["--resume"] if done else [])
    )
    wait_for_lines(metrics, done + 5, stopped)
    stopped.send_signal(number)
    _, err = stopped.communicate(timeout=120)
    assert stopped.returncode == 1, (number, err[-2000:])
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
      "error: interrupted; the last completed checkpoint is kept"
    ], (number, err[-1500:])
    meta = checkpoint.load_metadata(str(workdir / "checkpoint.npz"))
    lines = len(io.read_jsonl(metrics))
    assert done + 5 <= meta["epoch"] == lines < epochs, (number, meta["epoch"])
    assert not [p for p in workdir.iterdir() if p.name.startswith(".")]
    done = lines
  proc = run_module(
    "experiments.train", *args, "--resume", f"--workdir={workdir}"
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  a, b = (np.load(tmp_path / name / "checkpoint.npz") for name in "ab")
  for key in a.files:
    if key != "metadata_json":
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  strip = lambda path: [
    {
      k: v
      for k, v in row.items()
      if k not in ("seconds", "examples_per_second")
    }
    for row in io.read_jsonl(path)
  ]
  assert strip(metrics) == strip(tmp_path / "a" / "metrics.jsonl")
