"""experiments/benchmark.py end to end (tiny), and the references it times.

No timing is asserted (the machine is shared): only that every section ran
and produced positive finite numbers, and the values that do not depend on
speed (accuracies, agreement of the NumPy peer with linear_jax).
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import f32_tolerance

from linear_jax import LOSSES
from linear_jax import LinearJaxError
from linear_jax import bench
from linear_jax import objective
from linear_jax.bench import loss_throughput
from linear_jax.bench import time_to_accuracy
from linear_jax.bench.numpy_losses import NUMPY_LOSSES

REPO = Path(__file__).resolve().parents[1]


def relative_error(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return np.max(np.abs(a - b)) / np.max(np.abs(b))


def small_problem(dtype, seed=0, n=40, d=7, c=5):
  rng = np.random.default_rng(seed)
  return (rng.standard_normal((d, c)).astype(dtype),   # W: scores of order 1
          rng.standard_normal(c).astype(dtype) * 0.5,  # b
          rng.standard_normal((n, d)).astype(dtype),   # X
          rng.integers(0, c, n))                       # y


@pytest.mark.parametrize("loss,margin", [
    (loss, margin) for loss in sorted(LOSSES)
    for margin in ((None,) if loss == "softmax" else (1.0, 0.5))])
def test_numpy_reference_equals_objective_and_grad(x64, loss, margin):
  W, b, X, y = small_problem(np.float64)
  reg = 0.1
  options = {} if margin is None else {"margin": margin}
  value, dW, db = NUMPY_LOSSES[loss](W, b, X, y, reg, **options)
  full = lambda p: objective(p, X, y, loss=loss, reg="l2", reg_strength=reg,
                             **options)
  ref_value, grads = jax.value_and_grad(full)(
      {"W": jnp.asarray(W), "b": jnp.asarray(b)})
  assert grads["W"].dtype == jnp.float64
  assert abs(value - float(ref_value)) <= 1e-10 * abs(float(ref_value))
  assert relative_error(dW, grads["W"]) <= 1e-10
  assert relative_error(db, grads["b"]) <= 1e-10
  # The data term matters (not only λΣW²): the gradient is far from 2λW.
  assert relative_error(2 * reg * W, grads["W"]) > 0.1


def test_problem_has_active_and_inactive_margins():
  W, b, X, y = small_problem(np.float64)
  scores = X @ W + b
  m = scores - scores[np.arange(len(y)), y][:, None] + 1.0
  m[np.arange(len(y)), y] = -1
  assert 0.2 < np.mean(m[m != -1] > 0) < 0.8  # both branches of the hinge


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_numpy_reference_keeps_float32(loss):
  W, b, X, y = small_problem(np.float32)
  value, dW, db = NUMPY_LOSSES[loss](W, b, X, y, np.float32(1e-3))
  assert np.asarray(value).dtype == dW.dtype == db.dtype == np.float32


def test_agreement_check_rejects_a_wrong_reference():
  p = loss_throughput.problem(64, 12, 4)
  jax_out = loss_throughput.jax_loss_and_grad("svm")(
      {"W": jnp.asarray(p["W"]), "b": jnp.asarray(p["b"])},
      jnp.asarray(p["X"]), jnp.asarray(p["y"]), jnp.float32(0.5))
  value, dW, db = NUMPY_LOSSES["svm"](p["W"], p["b"], p["X"], p["y"],
                                      np.float32(0.5))
  assert loss_throughput.check_agreement("svm", jax_out, (value, dW, db)) < 1e-5
  wrong_dw = dW - 0.5 * p["W"]  # the classic bug: λW instead of 2λW
  with pytest.raises(Exception, match="differs from linear_jax.objective"):
    loss_throughput.check_agreement("svm", jax_out, (value, wrong_dw, db))


def fake_trainer(accuracies, calls):
  def train(epochs):
    calls.append(epochs)
    return 10.0 * epochs + len(calls), accuracies[epochs - 1]
  return train


def test_first_reaching_stops_at_first_epoch_count_that_reaches():
  calls = []
  result = time_to_accuracy.first_reaching(
      fake_trainer([0.30, 0.38, 0.41, 0.50], calls), target=0.40,
      max_epochs=4, repeats=5, name="fake", log=lambda _: None)
  assert calls == [1, 2, 3, 3, 3]  # E=3 found, then timed 3 times in all
  assert result == {"reached": True, "epochs": 3, "accuracy": 0.41,
                    "seconds": 34.0, "fits": 3}


def test_first_reaching_reports_best_when_not_reached():
  calls = []
  result = time_to_accuracy.first_reaching(
      fake_trainer([0.30, 0.36, 0.33], calls), target=0.40, max_epochs=3,
      repeats=5, name="fake", log=lambda _: None)
  assert calls == [1, 2, 3]
  assert result == {"reached": False, "epochs": 2, "accuracy": 0.36,
                    "seconds": 22.0, "fits": 1}


def test_accuracy_section_skips_cleanly_without_the_dataset(monkeypatch):
  def missing(name, **kwargs):
    raise LinearJaxError(f"cifar10_jpeg needs cifar10-jpeg.tar.gz ({name})")
  monkeypatch.setattr(time_to_accuracy.data_lib, "load_dataset", missing)
  lines = []
  section = time_to_accuracy.run(bench.FULL, log=lines.append)
  assert section.rows == []
  assert len(section.notes) == 1
  assert section.notes[0].startswith("section skipped, cifar10_jpeg not "
                                     "available: cifar10_jpeg needs")
  assert any("section skipped" in line for line in lines)


def run_benchmark(*args, timeout=120, **env_vars):
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
             **env_vars)
  return subprocess.run([sys.executable, "-m", "experiments.benchmark", *args],
                        cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=timeout)


def numbers(obj):
  """Every int/float (not bool) inside a JSON value."""
  if isinstance(obj, bool):
    return []
  if isinstance(obj, (int, float)):
    return [obj]
  if isinstance(obj, dict):
    return [n for v in obj.values() for n in numbers(v)]
  if isinstance(obj, list):
    return [n for v in obj for n in numbers(v)]
  return []


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(tmp_path):
  out = tmp_path / "b.json"
  proc = run_benchmark("--tiny", f"--out={out}",
                       LINEAR_JAX_CACHE=str(tmp_path / "cache"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.count("| section | what | time |") == 1  # one table
  assert "precision: float32, XLA default precision" in proc.stdout
  result = json.loads(out.read_text())
  for key in ("command", "date", "device", "precision", "config"):
    assert result[key]
  sections = result["sections"]
  assert set(sections) == {"machine", "loss", "epoch", "accuracy", "sweep"}
  for name, section in sections.items():
    assert section["rows"], name
    for row in section["rows"]:
      values = numbers({k: v for k, v in row.items() if k != "extra"})
      values += numbers(row.get("extra", {}))
      assert values and all(math.isfinite(v) and v > 0 for v in values), row

  loss_rows = sections["loss"]["rows"]
  assert sorted((r["extra"]["loss"], r["extra"]["impl"]) for r in loss_rows) \
      == sorted((l, i) for l in LOSSES
                for i in ("jax", "jax_closed_form", "numpy"))
  assert all(("ratio" in r) == (r["extra"]["impl"] != "numpy")
             for r in loss_rows)

  fused = [r for r in sections["epoch"]["rows"] if r["extra"].get("fused")]
  if fused:  # the C++ FFI epoch, where g++ builds it (else a note says why)
    assert [(r["extra"]["storage"], r["extra"]["batch_size"]) for r in fused] \
        == [("float32", 64)]
  else:
    assert any("fused CPU epoch skipped" in n
               for n in sections["epoch"]["notes"])
  epoch_rows = [r for r in sections["epoch"]["rows"]
                if "ratio" in r and not r["extra"].get("fused")]
  assert sorted((r["extra"]["storage"], r["extra"]["batch_size"],
                 r["extra"]["unroll"]) for r in epoch_rows) == sorted(
      (s, b, u) for s in ("float32", "uint8")
      for b, u in ((64, 1), (64, 2), (512, 1)))
  floors = {r["extra"]["storage"]: r["extra"] for r in sections["epoch"]["rows"]
            if "ratio" not in r}
  assert floors["float32"]["read_seconds"] == pytest.approx(
      4 * floors["uint8"]["read_seconds"])  # 4 bytes per feature against 1

  accuracy = {(r["extra"]["impl"], r["extra"]["loss"]): r
              for r in sections["accuracy"]["rows"]}
  assert set(accuracy) >= {("JAX", "softmax"), ("JAX", "svm"),
                           ("sklearn", "hinge"), ("sklearn", "log_loss")}
  for loss in ("softmax", "svm"):  # digits: 85 % within a few epochs
    assert accuracy["JAX", loss]["extra"]["reached"] is True
    assert accuracy["JAX", loss]["accuracy"] >= 0.85
  fused_acc = accuracy.get(("JAX fused C++ epoch", "softmax"))
  if fused_acc is not None:  # the same recipe through the fused CPU epoch
    assert fused_acc["extra"]["epochs"] == \
        accuracy["JAX", "softmax"]["extra"]["epochs"]
    # 0.01: a few digits test examples near a boundary, flipped by the two
    # float32 summation orders over a few epochs.
    assert fused_acc["accuracy"] == pytest.approx(
        accuracy["JAX", "softmax"]["accuracy"], abs=0.01)
  assert accuracy["sklearn", "hinge"]["accuracy"] > 0.85
  assert any("LogisticRegression skipped" in n
             for n in sections["accuracy"]["notes"])

  sweep = {r["extra"]["num_configs"]: r for r in sections["sweep"]["rows"]}
  assert set(sweep) == {1, 8}
  assert len(sections["sweep"]["rows"]) == 3


def test_unknown_section_is_a_one_line_error(tmp_path):
  proc = run_benchmark("--tiny", "--sections=loss,bogus",
                       f"--out={tmp_path / 'b.json'}")
  assert proc.returncode == 1
  assert proc.stderr.strip().startswith("error: ")
  assert "bogus" in proc.stderr and "loss" in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1
  assert not (tmp_path / "b.json").exists()


@pytest.mark.slow
def test_gpu_benchmark_blocked_part_runs_on_cpu(tmp_path):
  """``experiments/gpu_benchmark.py --only=blocked`` at toy size: the device
  script cannot rot between GPU sessions; its agreement row must be tight."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", BENCH_N="1024",
             BENCH_CONFIGS="4", BENCH_BLOCKS="2", PYTHONPATH=str(REPO))
  env.pop("LINEAR_JAX_SHARED_DATA", None)
  proc = subprocess.run(
      [sys.executable, "experiments/gpu_benchmark.py", "--only=blocked",
       f"--out={tmp_path}"], cwd=REPO, env=env, capture_output=True,
      text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = json.loads((tmp_path / "gpu_benchmark.json").read_text())["rows"]
  whats = [r["what"] for r in rows]
  assert whats[:2] == ["sweep 4 configs x 1 epoch f32 sgd, vmap (baseline)",
                       "sweep 4 configs x 1 epoch f32 sgd, blocked k=2"]
  assert all(r["ms"] > 0 for r in rows[:2])
  agreement = rows[2]["note"]
  relative = float(agreement.split("max |ΔW|/max|W| ")[1].split(",")[0])
  # Dots over D = 3072 features through 1024 / 256 = 4 steps (f32_tolerance):
  # ≈ 1.3e-4, while a missed Gram correction moves W by > 1e-2 of max|W|.
  assert relative < f32_tolerance(3072, steps=1024 // 256), agreement
