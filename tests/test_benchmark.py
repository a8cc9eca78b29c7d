"""The benchmark scripts (benchmarks/cpu.py, gpu.py) end to end at tiny
sizes, and the peers they time.

No timing is asserted (the machine is shared): only that every section ran
and produced positive finite numbers, and the values that do not depend on
speed (accuracies, agreement of the peers with linear_jax).
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import f32_tolerance, run_binary

from benchmarks import peers, sections
from benchmarks.peers import NUMPY_LOSSES
from linear_jax import LOSSES, LinearJaxError, objective


def relative_error(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return np.max(np.abs(a - b)) / np.max(np.abs(b))


def small_problem(dtype, seed=0, n=40, d=7, c=5):
  rng = np.random.default_rng(seed)
  return (
    rng.standard_normal((d, c)).astype(dtype),  # W: scores of order 1
    rng.standard_normal(c).astype(dtype) * 0.5,  # b
    rng.standard_normal((n, d)).astype(dtype),  # X
    rng.integers(0, c, n),
  )  # y


@pytest.mark.slow
@pytest.mark.parametrize(
  "loss,margin",
  [
    (loss, margin)
    for loss in sorted(LOSSES)
    for margin in ((None,) if loss == "softmax" else (1.0, 0.5))
  ],
)
def test_numpy_reference_equals_objective_and_grad(x64, loss, margin):
  W, b, X, y = small_problem(np.float64)
  reg = 0.1
  options = {} if margin is None else {"margin": margin}
  value, dW, db = NUMPY_LOSSES[loss](W, b, X, y, reg, **options)
  full = lambda p: objective(
    p, X, y, loss=loss, reg="l2", reg_strength=reg, **options
  )
  ref_value, grads = jax.value_and_grad(full)(
    {"W": jnp.asarray(W), "b": jnp.asarray(b)}
  )
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
  p = sections.problem(64, 12, 4)
  jax_out = sections.jax_loss_and_grad("svm")(
    {"W": jnp.asarray(p["W"]), "b": jnp.asarray(p["b"])},
    jnp.asarray(p["X"]),
    jnp.asarray(p["y"]),
    jnp.float32(0.5),
  )
  value, dW, db = NUMPY_LOSSES["svm"](
    p["W"], p["b"], p["X"], p["y"], np.float32(0.5)
  )
  assert sections.check_agreement("svm", jax_out, (value, dW, db)) < 1e-5
  wrong_dw = dW - 0.5 * p["W"]  # the classic bug: λW instead of 2λW
  with pytest.raises(Exception, match="differs from linear_jax.objective"):
    sections.check_agreement("svm", jax_out, (value, wrong_dw, db))


def fake_trainer(accuracies, calls):
  def train(epochs):
    calls.append(epochs)
    return 10.0 * epochs + len(calls), accuracies[epochs - 1]

  return train


def test_first_reaching_stops_at_first_epoch_count_that_reaches():
  calls = []
  result = sections.first_reaching(
    fake_trainer([0.30, 0.38, 0.41, 0.50], calls),
    target=0.40,
    max_epochs=4,
    repeats=5,
    name="fake",
    log=lambda _: None,
  )
  assert calls == [1, 2, 3, 3, 3]  # E=3 found, then timed 3 times in all
  assert result == {
    "reached": True,
    "epochs": 3,
    "accuracy": 0.41,
    "seconds": 34.0,
    "fits": 3,
  }


def test_first_reaching_reports_best_when_not_reached():
  calls = []
  result = sections.first_reaching(
    fake_trainer([0.30, 0.36, 0.33], calls),
    target=0.40,
    max_epochs=3,
    repeats=5,
    name="fake",
    log=lambda _: None,
  )
  assert calls == [1, 2, 3]
  assert result == {
    "reached": False,
    "epochs": 2,
    "accuracy": 0.36,
    "seconds": 22.0,
    "fits": 1,
  }


def test_accuracy_section_skips_cleanly_without_the_dataset(monkeypatch):
  def missing(name, **kwargs):
    raise LinearJaxError(f"cifar10_jpeg needs cifar10-jpeg.tar.gz ({name})")

  monkeypatch.setattr(sections.data_lib, "load_dataset", missing)
  lines = []
  ds = sections.load_accuracy_dataset(sections.FULL, log=lines.append)
  section = sections.run_accuracy(sections.FULL, ds, log=lines.append)
  assert section.rows == []
  assert len(section.notes) == 1
  assert section.notes[0].startswith(
    "section skipped, cifar10_jpeg not available: cifar10_jpeg needs"
  )
  assert any("section skipped" in line for line in lines)


def test_torch_peer_first_step_is_minus_lr_times_the_gradient():
  """From W = 0, one full-batch step of momentum SGD (torch: v = g, W −= lr·v;
  the decay 2λW is 0 at W = 0) is −lr · ∇L, with ∇L from jax.grad.
  """
  pytest.importorskip("torch")
  W, b, X, y = small_problem(np.float32, n=32, d=6, c=4)
  lr = 0.5
  peer = peers.TorchLinear(
    X,
    y,
    num_classes=4,
    loss="softmax",
    learning_rate=lr,
    reg_strength=0.1,
    batch_size=32,
  )
  peer.epoch()
  zero = {"W": jnp.zeros((6, 4)), "b": jnp.zeros(4)}
  grads = jax.grad(lambda p: objective(p, X, y, loss="softmax"))(zero)
  # float32 sums of 32 terms: rtol = 32 · eps32, with a margin of 10.
  rtol = 10 * 32 * np.finfo(np.float32).eps
  np.testing.assert_allclose(
    peer.model.weight.detach().cpu().numpy().T,
    -lr * np.asarray(grads["W"]),
    rtol=rtol,
    atol=rtol * lr * float(jnp.max(jnp.abs(grads["W"]))),
  )


def run_benchmark(*args, script="cpu", timeout=300, **env_vars):
  return run_binary(
    f"benchmarks.{script}", *args, timeout=timeout, env=env_vars
  )


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
  proc = run_benchmark("--tiny", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.count("| section | what | time |") == 1  # one table
  assert "precision: float32, XLA default precision" in proc.stdout
  result = json.loads(out.read_text())
  for key in ("command", "date", "device", "precision", "config"):
    assert result[key]
  got = result["sections"]
  assert set(got) == {"machine", "loss", "epoch", "accuracy", "sweep"}
  for name, section in got.items():
    assert section["rows"], name
    for row in section["rows"]:
      values = numbers({k: v for k, v in row.items() if k != "extra"})
      values += numbers(row.get("extra", {}))
      assert values and all(math.isfinite(v) and v > 0 for v in values), row

  loss_rows = got["loss"]["rows"]
  assert sorted(
    (r["extra"]["loss"], r["extra"]["impl"]) for r in loss_rows
  ) == sorted(
    (line, i) for line in LOSSES for i in ("jax", "jax_closed_form", "numpy")
  )
  assert all(
    ("ratio" in r) == (r["extra"]["impl"] != "numpy") for r in loss_rows
  )

  fused = [r for r in got["epoch"]["rows"] if r["extra"].get("fused")]
  if fused:  # the C++ FFI epoch, where g++ builds it (else a note says why)
    assert [
      (r["extra"]["storage"], r["extra"]["batch_size"]) for r in fused
    ] == [("float32", 64)]
  else:
    assert any("fused CPU epoch skipped" in n for n in got["epoch"]["notes"])
  epoch_rows = [
    r
    for r in got["epoch"]["rows"]
    if "ratio" in r and not r["extra"].get("fused") and "impl" not in r["extra"]
  ]
  assert sorted(
    (r["extra"]["storage"], r["extra"]["batch_size"], r["extra"]["unroll"])
    for r in epoch_rows
  ) == sorted(
    (s, b, u)
    for s in ("float32", "uint8")
    for b, u in ((64, 1), (64, 2), (512, 1))
  )
  floors = {
    r["extra"]["storage"]: r["extra"]
    for r in got["epoch"]["rows"]
    if "ratio" not in r
  }
  assert floors["float32"]["read_seconds"] == pytest.approx(
    4 * floors["uint8"]["read_seconds"]
  )  # 4 bytes per feature against 1

  accuracy = {
    (r["extra"]["impl"], r["extra"]["loss"]): r for r in got["accuracy"]["rows"]
  }
  assert set(accuracy) >= {
    ("JAX", "softmax"),
    ("JAX", "svm"),
    ("sklearn", "hinge"),
    ("sklearn", "log_loss"),
  }
  for loss in ("softmax", "svm"):  # digits: 85 % within a few epochs
    assert accuracy["JAX", loss]["extra"]["reached"] is True
    assert accuracy["JAX", loss]["accuracy"] >= 0.85
  fused_acc = accuracy.get(("JAX fused C++ epoch", "softmax"))
  if fused_acc is not None:  # the same recipe through the fused CPU epoch
    assert (
      fused_acc["extra"]["epochs"]
      == accuracy["JAX", "softmax"]["extra"]["epochs"]
    )
    # 0.01: a few digits test examples near a boundary, flipped by the two
    # float32 summation orders over a few epochs.
    assert fused_acc["accuracy"] == pytest.approx(
      accuracy["JAX", "softmax"]["accuracy"], abs=0.01
    )
  assert accuracy["sklearn", "hinge"]["accuracy"] > 0.85
  assert any(
    "LogisticRegression skipped" in n for n in got["accuracy"]["notes"]
  )

  sweep = {r["extra"]["num_configs"]: r for r in got["sweep"]["rows"]}
  assert set(sweep) == {1, 8}
  assert len(got["sweep"]["rows"]) == 3


@pytest.mark.slow
def test_unknown_section_is_a_one_line_error(tmp_path):
  proc = run_benchmark(
    "--tiny", "--sections=loss,bogus", f"--out={tmp_path / 'b.json'}"
  )
  assert proc.returncode == 1
  assert proc.stderr.strip().startswith("error: ")
  assert "bogus" in proc.stderr and "loss" in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1
  assert not (tmp_path / "b.json").exists()


@pytest.mark.slow
def test_gpu_script_runs_on_cpu(tmp_path):
  """``benchmarks/gpu.py --tiny`` on the CPU, its GPU-only sections: the
  device script cannot rot between GPU runs; blocked must agree with vmap.
  """
  out = tmp_path / "g.json"
  proc = run_benchmark(
    "--tiny",
    "--sections=blocked,pallas",
    "--block_steps=2,3",
    f"--out={out}",
    script="gpu",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "command: python -m benchmarks.gpu --tiny" in proc.stdout
  result = json.loads(out.read_text())
  blocked = result["sections"]["blocked"]
  assert [r["extra"]["block_steps"] for r in blocked["rows"]] == [1, 2, 3]
  assert all(r["seconds"] > 0 for r in blocked["rows"])
  (note,) = blocked["notes"]
  relative = float(note.split("max |ΔW| / max |W| = ")[1])
  # Dots over D = 48 features through 512 / 64 = 8 steps (f32_tolerance):
  # ≈ 2.3e-5, while a missed Gram correction moves W by > 1e-2 of max|W|.
  assert relative < f32_tolerance(48, steps=512 // 64), note
  assert result["sections"]["pallas"]["notes"] == [
    "section skipped: the Pallas epoch needs a GPU"
  ]
