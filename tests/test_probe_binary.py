"""experiments/probe.py as a user runs it: the README's npz example through
probe and predict, rows sharded over two processes, and bad input refused in
one line with nothing written.
"""

import concurrent.futures
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import f32_tolerance, run_binary_processes, slow_except
from test_probe import bad_npz

from linear_jax import probe
from linear_jax.data import distributions

REPO = Path(__file__).resolve().parents[1]
FLAGFILE = REPO / "experiments/flags/probe_mnist1d.flags"


def mnist1d_stand_in(file):
  """MNIST-1D's shapes and layout (``mnist1d`` is not installed here): 4,000
  train / 1,000 test float64 rows of D = 40, 10 int64 classes, from 10
  overlapping Gaussians.
  """
  rng = np.random.default_rng(0)
  dist = distributions.gaussians(10, 40, means=0.2 * rng.normal(size=(10, 40)))
  x, y = dist.sample(5000, seed=1)
  np.savez(
    file,
    x_train=x[:4000].astype(np.float64),
    y_train=y[:4000].astype(np.int64),
    x_test=x[4000:].astype(np.float64),
    y_test=y[4000:].astype(np.int64),
  )
  return file


def read_results(workdir):
  with open(workdir / "results.csv") as f:
    rows = list(csv.DictReader(f))
  return {
    key: np.array([float(r[key] or "nan") for r in rows])
    for key in ("objective", "iterations", "train_accuracy", "val_accuracy")
  }


TWO_PROCESS_GRID = "1,0.1,0.01,0.001"


def two_processes(data, workdirs, *extra):
  """``experiments.probe`` on rows sharded over two localhost processes
  (CPU collectives: gloo), process i given ``--workdir=workdirs[i]``; each
  process's ``(stdout, stderr)``.
  """
  return run_binary_processes(
    "experiments.probe",
    lambda i: [
      f"--dataset=npz:{data}",
      f"--reg_strengths={TWO_PROCESS_GRID}",
      f"--workdir={workdirs[i]}",
      "--noplots",
      "--standardize",
      *extra,
    ],
  )


@pytest.mark.slow
def test_two_processes_select_the_same_lambda_as_one(tmp_path):
  """Each process reads only its rows of an uncompressed npz (x, y: the
  probe carves test and validation; μ and σ over both processes' rows);
  every process computes the same results, and they are one process's up to
  float32 rounding.
  """
  rng = np.random.default_rng(0)
  centres = 1.5 * rng.normal(size=(3, 4))
  y = rng.integers(0, 3, 201)  # odd: shards of 101 and 100 file rows
  x = (centres[y] + rng.normal(size=(201, 4)) + 3).astype(np.float32)
  data = tmp_path / "tiny.npz"
  np.savez(data, x=x, y=y)

  workdir = tmp_path / "two"
  # The one-process run, in this process, overlaps the two-process job's
  # start-up. Process 1 is given a workdir of its own: only process 0
  # writes, so it must never appear.
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    job = pool.submit(two_processes, data, [workdir, tmp_path / "unused"])
    one = probe.run(
      probe.ProbeConfig(
        dataset=f"npz:{data}",
        reg_strengths=tuple(float(v) for v in TWO_PROCESS_GRID.split(",")),
        workdir=str(tmp_path / "one"),
        plots=False,
        standardize=True,
      )
    )
    stdout = [out for out, _ in job.result()]
  assert not (tmp_path / "unused").exists()
  two = json.loads((workdir / "summary.json").read_text())
  assert two["num_processes"] == 2 and one["num_processes"] == 1
  # Every process computes the same numbers (sha256 of every row and the
  # final params) and prints the same selection.
  digests = [re.findall(r"results sha256 (\w+)", out) for out in stdout]
  assert digests == [[two["results_sha256"]]] * 2
  selected = [re.findall(r"selected λ=.* test acc \S+", out) for out in stdout]
  assert len(selected[0]) == 1 and selected[0] == selected[1]
  # The same split (same seed, same rows) and the same selection.
  for key in ("num_train", "num_val", "num_test"):
    assert two[key] == one[key], key
  assert two["best_reg_strength"] == one["best_reg_strength"]
  # The two runs differ in how each sum over the training rows is split
  # (two shards added by psum; the rows in another order), so each
  # evaluation differs by float32 rounding of N-term sums, which L-BFGS
  # carries through its iterations (conftest's rule, the longest run's
  # count). A wrong shard, a row counted twice or a missing psum moves an
  # objective by ≥ 1e-3.
  a, b = read_results(tmp_path / "one"), read_results(workdir)
  steps = int(max(a["iterations"].max(), b["iterations"].max()))
  rtol = f32_tolerance(one["num_train"], steps=steps)
  np.testing.assert_allclose(b["objective"], a["objective"], rtol=rtol)
  # One example in a split may flip where a score is a near tie.
  for key, n in (("train_accuracy", "num_train"), ("val_accuracy", "num_val")):
    np.testing.assert_allclose(b[key], a[key], atol=1.001 / one[n])
  assert (
    abs(two["test_accuracy"] - one["test_accuracy"]) <= 1.001 / one["num_test"]
  )

  # --resume: every process reads process 0's checkpoint (a shared
  # workdir) and finds every λ done, so the same results come back.
  again = two_processes(data, [workdir, workdir], "--resume")
  for out, err in again:
    assert re.findall(r"results sha256 (\w+)", out) == digests[0]
    assert "--resume: 4 of 4 λ values done" in err, err[-2000:]


def dataset(tmp_path, **change):
  return f"--dataset=npz:{bad_npz(tmp_path / 'bad.npz', **change)}"


def errors(proc):
  return [
    line for line in proc.stderr.splitlines() if line.startswith("error:")
  ]


@pytest.mark.slow
def test_npz_example_through_probe_then_predict(tmp_path, run_module):
  feats = mnist1d_stand_in(tmp_path / "feats.npz")
  workdir = tmp_path / "probe"
  proc = run_module(
    "experiments.probe",
    f"--flagfile={FLAGFILE}",
    f"--dataset=npz:{feats}",
    f"--workdir={workdir}",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "λ 1/13" in proc.stderr and "(compilation included)" in proc.stderr
  assert "λ 13/13" in proc.stderr and "ETA" in proc.stderr
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["refit"] and summary["num_train"] == 3600
  with open(workdir / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["fit"] for r in rows] == ["train"] * 13 + ["train+val"]
  assert float(rows[-1]["test_accuracy"]) == summary["test_accuracy"]
  assert 0.2 < summary["test_accuracy"] < 1.0  # above chance (0.1)
  test = f"{summary['test_accuracy']:.4f}"
  assert f"test acc {test} (refit on train + validation)" in proc.stdout

  proc = run_module(
    "experiments.predict",
    f"--workdir={workdir}",
    f"--input=npz:{feats}",
    f"--output={workdir / 'predictions.csv'}",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"predicted 1000 examples  accuracy {test}" in proc.stdout
  with open(workdir / "predictions.csv") as f:
    labels = np.array([int(r["label"]) for r in csv.DictReader(f)])
  with np.load(feats) as f:
    accuracy = float(np.mean(labels == f["y_test"]))
  assert accuracy == summary["test_accuracy"]  # exactly the probe's

  # Resuming with another grid is refused in one line; nothing changes.
  before = {p.name: p.read_bytes() for p in workdir.iterdir()}
  proc = run_module(
    "experiments.probe",
    f"--flagfile={FLAGFILE}",
    f"--dataset=npz:{feats}",
    f"--workdir={workdir}",
    "--Cs=1,10",
    "--resume",
  )
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert len(errors(proc)) == 1 and "another grid" in errors(proc)[0]
  assert {p.name: p.read_bytes() for p in workdir.iterdir()} == before


@pytest.mark.parametrize(
  "case,words",
  slow_except(
    [
      ("--Cs=", "the grid is empty"),
      ("--Cs=1,0", "Cs must be > 0"),
      ("--reg_strengths=1e-3,-1e-4", "reg_strengths must be ≥ 0"),
      ("--loss=svm", "the λ path cannot solve it"),
      ("nan", "NaN/Inf"),
      ("width", "different feature counts"),
      ("labels", "the test labels differ from the training labels"),
      ("occupied", "exists; pass --resume"),
      ("--num_processes=2", "needs --coordinator_address"),
      ("--process_id=1", "--process_id must lie in [0, 1)"),
    ],
    ("--Cs=1,0", "Cs must be > 0"),
  ),
)
def test_bad_input_is_one_line_and_writes_nothing(
  case, words, tmp_path, run_module
):
  workdir = tmp_path / "w"
  args = ["--Cs=1", f"--workdir={workdir}"]
  if case.startswith("--"):
    args.append(case)
  elif case == "nan":
    args.append(dataset(tmp_path, x_train=np.full((50, 4), np.inf)))
  elif case == "width":
    args.append(dataset(tmp_path, x_test=np.zeros((10, 3))))
  elif case == "labels":
    args.append(dataset(tmp_path, y_test=np.arange(10) % 3))
  elif case == "occupied":
    workdir.mkdir()
    (workdir / "results.csv").write_text("another run's\n")
  proc = run_module("experiments.probe", *args, timeout=120)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert len(errors(proc)) == 1 and words in errors(proc)[0], proc.stderr[
    -1500:
  ]
  if case == "occupied":
    assert [p.name for p in workdir.iterdir()] == ["results.csv"]
    assert (workdir / "results.csv").read_text() == "another run's\n"
  else:
    assert not workdir.exists()
