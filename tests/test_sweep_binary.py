"""experiments/sweep.py as a user runs it: files, selection, refusal to
overwrite, one-line flag errors, and two processes agreeing on one sweep.
"""

import csv
import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import (
  binary_env,
  f32_tolerance,
  run_binary_processes,
  slow_except,
)

from linear_jax.data import load_dataset

REPO = Path(__file__).resolve().parents[1]
SWEEP = [
  "--dataset=blobs",
  "--reg_strengths=1e-4,1",
  "--learning_rates=logspace:1e-2:1e-1:2,1e6",
  "--epochs=3",
  "--batch_size=64",
]


def read_csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def single(tmp_path_factory, run_module):
  """One single-process sweep of svm and softmax (12 configurations)."""
  workdir = tmp_path_factory.mktemp("sweep") / "run"
  proc = run_module(
    "experiments.sweep", "--losses=svm,softmax", *SWEEP, f"--workdir={workdir}"
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir, proc


@pytest.mark.slow
def test_sweep_writes_results_and_selects_best_per_loss(single):
  workdir, proc = single
  assert sorted(p.name for p in workdir.iterdir()) == [
    "heatmap_softmax.png",
    "heatmap_svm.png",
    "history.csv",
    "results.csv",
    "results.md",
    "sweep_checkpoint.npz",
    "sweep_summary.json",
  ]
  for name in ("heatmap_softmax.png", "heatmap_svm.png"):
    assert (workdir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  rows = read_csv(workdir / "results.csv")
  assert len(rows) == 12
  assert list(rows[0]) == [
    "loss",
    "reg",
    "reg_strength",
    "learning_rate",
    "margin",
    "seed",
    "val_accuracy",
    "train_accuracy",
    "data_loss",
    "reg_loss",
    "diverged",
    "diverged_epoch",
    "test_accuracy",
  ]
  assert [float(r["learning_rate"]) for r in rows[:3]] == [0.01, 0.1, 1e6]
  assert {r["margin"] for r in rows if r["loss"] == "softmax"} == {""}
  assert {r["margin"] for r in rows if r["loss"] == "svm"} == {"1.0"}
  for r in rows:
    absurd = float(r["learning_rate"]) == 1e6
    assert r["diverged"] == str(absurd)
    assert r["diverged_epoch"] == ("1" if absurd else "")
    assert (r["val_accuracy"] == "") == absurd
  tested = [r for r in rows if r["test_accuracy"]]
  assert [
    (r["loss"], r["reg_strength"], r["learning_rate"]) for r in tested
  ] == [("svm", "0.0001", "0.01"), ("softmax", "0.0001", "0.01")]
  for r in tested:  # the best of its loss on validation
    same = [
      float(o["val_accuracy"])
      for o in rows
      if o["loss"] == r["loss"] and o["val_accuracy"]
    ]
    assert float(r["val_accuracy"]) == max(same)
    assert float(r["test_accuracy"]) >= 0.95
  summary = json.loads((workdir / "sweep_summary.json").read_text())
  assert summary["num_configs"] == 12 and summary["num_diverged"] == 4
  assert summary["train_seconds"] > 0 and summary["compile_seconds"] > 0
  assert summary["devices"] == [
    {"id": 0, "platform": "cpu", "kind": "cpu", "process": 0}
  ]
  assert summary["best"]["svm"]["test_accuracy"] == float(
    tested[0]["test_accuracy"]
  )
  assert summary["best"]["softmax"]["learning_rate"] == 0.01
  md = (workdir / "results.md").read_text()
  assert "python -m experiments.sweep" in md and "## Best per loss" in md
  assert md.count("epoch 1") == 4  # the diverged rows
  for group in ("svm/l2 seed 0", "softmax/l2 seed 0"):
    assert (
      f"{group} chunk 1/1 [6 configs + 0 padding on 1 devices] epoch 3/3"
      in proc.stderr
    )
  assert f"results sha256 {summary['results_sha256']}" in proc.stdout
  assert "best svm: val 1.0000" in proc.stdout


@pytest.mark.slow
def test_selected_row_equals_experiments_train(single, tmp_path):
  from linear_jax import train

  workdir, _ = single
  best = json.loads((workdir / "sweep_summary.json").read_text())["best"]["svm"]
  summary = train.train_and_evaluate(
    train.RunConfig(
      dataset="blobs",
      loss="svm",
      margin=best["margin"],
      reg=best["reg"],
      reg_strength=best["reg_strength"],
      learning_rate=best["learning_rate"],
      optimizer="momentum",
      batch_size=64,
      epochs=3,
      seed=best["seed"],
      plots=False,
    ),
    str(tmp_path / "alone"),
  )
  assert abs(summary["val_accuracy"] - best["val_accuracy"]) <= 1 / 400
  assert abs(summary["test_accuracy"] - best["test_accuracy"]) <= 1 / 500


@pytest.mark.slow
def test_refuses_to_overwrite_results(single, run_module):
  workdir, _ = single
  before = (workdir / "results.csv").read_bytes()
  proc = run_module(
    "experiments.sweep",
    "--losses=svm",
    *SWEEP,
    f"--workdir={workdir}",
    timeout=120,
  )
  assert proc.returncode == 1
  errors = [
    line for line in proc.stderr.splitlines() if line.startswith("error:")
  ]
  assert errors == [
    f"error: {workdir / 'results.csv'} exists; pass --resume "
    "to continue that sweep, --overwrite to replace it, or "
    "choose a new --workdir (nothing was written)"
  ], proc.stderr[-1500:]
  assert (workdir / "results.csv").read_bytes() == before


@pytest.mark.parametrize(
  "flag,words",
  slow_except(
    [
      (
        "--losses=svm,softmx",
        "unknown loss 'softmx' (did you mean 'softmax'?)",
      ),
      ("--seed=-1", "seed must be in [0, 4294967295], got -1"),
      ("--seeds=0,-1", "seeds must be in [0, 4294967295]"),
      ("--learning_rates=logspace:1e-4:1e-1", "--learning_rates: bad range"),
      ("--reg_strengths=logspace:0:1:3", "logspace needs START and STOP > 0"),
      ("--regs=l2,l3", "unknown regularizer 'l3'"),
      ("--num_processes=2", "needs --coordinator_address"),
      (
        "--sweep_algorithm=blocked",
        "the blocked sweep algorithm needs "
        "optimizer sgd and regularizer l2 or none, got momentum/l2",
      ),
      ("--block_steps=0", "block_steps must be ≥ 1"),
    ],
    ("--losses=svm,softmx", "unknown loss 'softmx' (did you mean 'softmax'?)"),
  ),
)
def test_bad_flags_exit_nonzero_with_one_line(
  flag, words, tmp_path, run_module
):
  proc = run_module(
    "experiments.sweep",
    flag,
    "--dataset=blobs",
    f"--workdir={tmp_path / 'w'}",
    timeout=120,
  )
  assert proc.returncode != 0
  errors = [
    line for line in proc.stderr.splitlines() if line.startswith("error:")
  ]
  assert len(errors) == 1 and words in errors[0], proc.stderr[-1500:]
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_two_processes_run_one_sweep_and_agree(single, tmp_path):
  """jax.distributed on localhost, CPU collectives (gloo), one device each."""
  outputs = run_binary_processes(
    "experiments.sweep",
    lambda i: ["--losses=svm", *SWEEP, f"--workdir={tmp_path / f'p{i}'}"],
    timeout=240,
  )
  results = [
    [line for line in out.splitlines() if line.startswith(("best", "sweep:"))]
    for out, _ in outputs
  ]
  assert len(results[0]) == 2
  assert "on 2 devices in 2 processes" in results[0][1]
  # Both processes print the same best and the same digest of every number.
  strip = lambda lines: [line.split(" -> ")[0] for line in lines]
  assert strip(results[0]) == strip(results[1])
  assert not (tmp_path / "p1").exists()  # only process 0 writes
  two = read_csv(tmp_path / "p0" / "results.csv")
  one = [r for r in read_csv(single[0] / "results.csv") if r["loss"] == "svm"]
  assert len(two) == len(one) == 6
  blobs = load_dataset("blobs", seed=0)
  rows = {
    "train_accuracy": len(blobs.y_train),
    "val_accuracy": len(blobs.y_val),
    "test_accuracy": len(blobs.y_test),
  }
  for a, b in zip(two, one, strict=True):
    assert [a[k] for k in ("reg_strength", "learning_rate", "diverged")] == [
      b[k] for k in ("reg_strength", "learning_rate", "diverged")
    ]
    # 3 configurations per device against 12 on one device: other matmul
    # widths, other float32 rounding; at most one example per split flips.
    for k, n in rows.items():
      if a[k]:
        assert abs(float(a[k]) - float(b[k])) <= 1.001 / n, (k, a[k], b[k])
      else:
        assert not b[k]
    # 3 epochs × 25 steps of 64-row gradient sums (f32_tolerance), × 10 for
    # the svm loss near separation: a few hinge terms 1 + s_j − s_y of ~1e-4
    # from scores of ~10 (measured 1.3e-5 relative); a wrong configuration
    # or step changes a loss by > 1e-2.
    for k in ("data_loss", "reg_loss"):
      if a[k]:
        np.testing.assert_allclose(
          float(a[k]),
          float(b[k]),
          rtol=f32_tolerance(64, steps=3 * 25, factor=100),
          err_msg=k,
        )


@pytest.mark.slow
@pytest.mark.parametrize(
  "flagfile",
  slow_except(
    ["cifar10_sweep.flags", "digits_sweep.flags"], "digits_sweep.flags"
  ),
)
def test_flagfiles_parse(flagfile, tmp_path, run_module):
  """Every value in the flagfile parses; the run stops at the bad dataset."""
  proc = run_module(
    "experiments.sweep",
    f"--flagfile=experiments/flags/{flagfile}",
    "--dataset=no_such_set",
    f"--workdir={tmp_path / 'w'}",
    timeout=120,
  )
  assert proc.returncode == 1
  errors = [
    line for line in proc.stderr.splitlines() if line.startswith("error:")
  ]
  assert len(errors) == 1 and "unknown dataset 'no_such_set'" in errors[0], (
    proc.stderr[-1500:]
  )
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_two_sweeps_started_together_on_one_workdir(tmp_path):
  """Even with --overwrite, one sweep runs and the other is refused in one
  line naming the holder: the results on disk are the winner's, whole.
  """
  workdir = tmp_path / "shared"
  env = binary_env()
  procs = [
    subprocess.Popen(
      [
        sys.executable,
        "-m",
        "experiments.sweep",
        "--losses=svm",
        *SWEEP,
        f"--seed={seed}",  # different results: a mix would show
        "--overwrite",
        f"--workdir={workdir}",
      ],
      cwd=REPO,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for seed in (0, 1)
  ]
  outputs = [p.communicate(timeout=240) for p in procs]
  codes = [p.returncode for p in procs]
  assert sorted(codes) == [0, 1], [err[-1500:] for _, err in outputs]
  winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
  errors = [
    line for line in outputs[loser][1].splitlines() if line.startswith("error:")
  ]
  assert len(errors) == 1, outputs[loser][1][-1500:]
  assert errors[0].startswith(
    f"error: {workdir} is in use by PID {procs[winner].pid} on "
    f"{socket.gethostname()}"
  ), errors
  summary = json.loads((workdir / "sweep_summary.json").read_text())
  assert summary["config"]["seed"] == winner
  assert f"results sha256 {summary['results_sha256']}" in outputs[winner][0]
  # results.csv is the text the digest hashes (report.digest).
  results = (workdir / "results.csv").read_bytes()
  assert hashlib.sha256(results).hexdigest() == summary["results_sha256"]
