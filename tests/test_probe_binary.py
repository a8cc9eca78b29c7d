"""experiments/probe.py as a user runs it: the README's npz example through
probe and predict, and bad input refused in one line with nothing written.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import slow_except
from test_probe import bad_npz

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
