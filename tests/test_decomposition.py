"""The error decomposition: real terms on distributions whose R* is known."""

import json
import math
import os

import conftest
import jax.numpy as jnp
import numpy as np
import pytest

from linear_jax import decomposition
from linear_jax.data import distributions

SIZES = (16, 1024)
BUDGETS = (1, 64)


@pytest.fixture(scope="module")
def result():
  """One run: two distributions, softmax, 32 seeds (the seed spread of the
  estimation term at n = 16 is its largest error); f*_F on 10⁶ samples.
  """
  config = decomposition.DecompositionConfig(
    datasets=("gaussians", "parity"),
    losses=("softmax",),
    sizes=SIZES,
    seeds=32,
    budgets=BUDGETS,
    steps=200,
  )
  return decomposition.run(config)


def rows_of(result, dataset, **match):
  return [
    r
    for r in result["rows"]
    if r["dataset"] == dataset and all(r[k] == v for k, v in match.items())
  ]


@pytest.mark.slow
def test_terms_add_up_to_the_total_excess_risk(result):
  assert len(result["rows"]) == 2 * len(SIZES) * len(BUDGETS)
  for row in result["rows"]:
    # Float64 means of ≤ 10⁶ numbers in [-1, 1]: a few ulps of 1.
    assert row["approximation"] + row["estimation"] + row[
      "optimization"
    ] == pytest.approx(row["total_excess"], abs=1e-12)
    assert row["bayes"] + row["total_excess"] == pytest.approx(
      row["risk"], abs=1e-12
    )
  assert result["identity_residual"] <= decomposition.IDENTITY_TOLERANCE


@pytest.mark.slow
def test_bayes_risk_and_test_errors(result):
  for row in rows_of(result, "gaussians"):
    assert row["bayes"] == pytest.approx(
      distributions.normal_cdf(-1.0), rel=1e-12
    )
  for row in rows_of(result, "parity"):
    assert row["bayes"] == 0.0
  # 10⁵ test points: every risk's standard error is below 0.2 points.
  assert 0 < result["max_risk_se"] < 0.002


@pytest.mark.slow
def test_approximation_error(result):
  """0 within 3 standard errors where the Bayes classifier is linear; ≥ 0.3
  on parity, where the best linear classifier errs on 1/3 of the points.
  """
  gauss = rows_of(result, "gaussians")[0]
  assert abs(gauss["approximation"]) <= 3 * gauss["approximation_se"] + 1e-12
  assert gauss["approximation_se"] < 0.002  # the bound is not vacuous
  assert rows_of(result, "parity")[0]["approximation"] >= 0.3


@pytest.mark.slow
def test_estimation_error_decreases_with_n(result):
  small = rows_of(result, "gaussians", n=SIZES[0], budget=BUDGETS[0])[0]
  large = rows_of(result, "gaussians", n=SIZES[-1], budget=BUDGETS[0])[0]
  gap = small["estimation"] - large["estimation"]
  assert gap > 3 * math.hypot(small["estimation_se"], large["estimation_se"])


@pytest.mark.slow
def test_optimization_error_shrinks_with_budget(result):
  for n in SIZES:
    short = rows_of(result, "gaussians", n=n, budget=BUDGETS[0])[0]
    long = rows_of(result, "gaussians", n=n, budget=BUDGETS[-1])[0]
    gap = short["optimization"] - long["optimization"]
    assert gap > 3 * math.hypot(
      short["optimization_se"], long["optimization_se"]
    )


@pytest.mark.slow
def test_masks_train_exactly_the_prefix(x64):
  """A weight-0 row changes nothing: the masked fit on the first n rows of
  a sample equals the fit on those n rows alone (float64: to rounding of
  sums in another order, amplified over 30 Adam steps).
  """
  x, y = distributions.gaussians(3, 4, separation=1.5).sample(64, seed=0)
  x = jnp.asarray(x, jnp.float64)
  hp = {
    k: jnp.float64(v)
    for k, v in dict(
      learning_rate=0.1, decay_steps=20.0, reg_strength=1e-3, margin=1.0
    ).items()
  }
  kw = dict(loss="svm", reg="l2", snapshots=(5, 30), num_classes=3)
  masks = (np.arange(64)[None] < np.array([16, 64])[:, None]).astype(np.float64)
  masked = decomposition.fit_prefixes(x[None], y[None], masks, hp, **kw)
  alone = decomposition.fit_prefixes(
    x[None, :16], y[None, :16], np.ones((1, 16)), hp, **kw
  )
  for key in ("W", "b"):
    np.testing.assert_allclose(
      masked[key][0, 0], alone[key][0, 0], rtol=1e-9, atol=1e-12
    )
    # ... and the full mask trains on all 64 rows: another model.
    assert np.abs(masked[key][0, 1] - alone[key][0, 0]).max() > 1e-3


def test_decompose_without_bayes_risk():
  """R* unknown: approximation + Bayes + estimation + optimization = R(f̃_n)."""
  rng = np.random.default_rng(0)
  wrong_large = rng.random(500) < 0.3
  wrong = rng.random((3, 2, 2, 500)) < 0.4
  rows = decomposition.decompose(
    wrong_large, wrong, None, None, sizes=(10, 20), budgets=(1,)
  )
  assert len(rows) == 2 and all(r["bayes"] is None for r in rows)
  assert rows[0]["approx_plus_bayes"] == pytest.approx(wrong_large.mean())
  assert rows[0]["risk"] == pytest.approx(wrong[:, 0, 0].mean())
  assert decomposition.check_identity(rows) <= decomposition.IDENTITY_TOLERANCE


def run_binary(workdir, *extra):
  return conftest.run_binary(
    "experiments.error_decomposition",
    f"--workdir={workdir}",
    "--datasets=gaussians,modes",
    "--losses=svm",
    "--sizes=8,32",
    "--seeds=2",
    "--budgets=1",
    "--steps=20",
    "--large_n=2000",
    "--large_steps=20",
    "--large_batch=100",
    "--test_n=2000",
    *extra,
    timeout=300,
  )


@pytest.mark.slow
def test_binary_end_to_end(tmp_path):
  workdir = tmp_path / "run"
  proc = run_binary(workdir)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "| gaussians | svm | 8 | 1 |" in proc.stdout
  with open(workdir / "decomposition.json") as f:
    data = json.load(f)
  assert [r["n"] for r in data["rows"]] == [8, 32, 8, 32]
  assert data["datasets"]["modes"]["bayes_method"].startswith("monte carlo")
  assert all("svm surrogate" in r["caveat"] for r in data["rows"])
  md = (workdir / "decomposition.md").read_text()
  assert "| modes | svm | 32 | 1 |" in md and "0–1 risk" in md
  for name in ("decomposition.png", "terms_vs_n.png"):
    assert (workdir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  again = run_binary(workdir)
  assert again.returncode == 1
  assert again.stderr.strip().splitlines() == [
    f"error: {workdir}/decomposition.json exists; choose a new --workdir "
    "(nothing was overwritten)"
  ]


CIFAR10 = "/work/shared/data/cifar10-jpeg.tar.gz"


@pytest.mark.slow
@pytest.mark.skipif(
  not os.path.exists(CIFAR10), reason="the shared CIFAR-10 JPEG set is absent"
)
def test_cifar10_reports_approximation_plus_bayes():
  """R* unknown: R(f*_F) on all 49,000 training images is one term."""
  config = decomposition.DecompositionConfig(
    datasets=(f"folder:{CIFAR10}",),
    losses=("softmax",),
    sizes=(100, 1000),
    seeds=2,
    budgets=(1,),
    steps=20,
    validation_size=1000,
    learning_rate=1e-3,
    decay_steps=100.0,
    reg_strength=1e-3,
  )
  result = decomposition.run(config)
  info = result["datasets"][f"folder:{CIFAR10}"]
  assert (info["train_large"], info["test"], info["bayes_risk"]) == (
    49_000,
    10_000,
    None,
  )
  small, large = result["rows"]
  assert small["bayes"] is None and small["approximation"] is None
  # 20 full-batch steps on 49,000 images: far better than chance (90 %).
  assert small["approx_plus_bayes"] < 0.75
  assert small["estimation"] - large["estimation"] > 3 * math.hypot(
    small["estimation_se"], large["estimation_se"]
  )
  assert result["identity_residual"] <= decomposition.IDENTITY_TOLERANCE


@pytest.mark.slow
def test_a_workdir_in_use_is_refused_before_any_work(tmp_path, lock_holder):
  config = decomposition.DecompositionConfig(
    datasets=("gaussians",),
    losses=("svm",),
    sizes=(8,),
    seeds=2,
    budgets=(1,),
    steps=20,
    large_n=2000,
    large_steps=20,
    large_batch=100,
    test_n=2000,
  )
  workdir = tmp_path / "run"
  with lock_holder(workdir) as pid:
    with pytest.raises(decomposition.checks.LinearJaxError) as e:
      decomposition.run_experiment(config, str(workdir))
    assert str(e.value).startswith(f"{workdir} is in use by PID {pid} on ")
    assert sorted(p.name for p in workdir.iterdir()) == [".lock"]
