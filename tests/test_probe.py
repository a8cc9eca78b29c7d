"""linear_jax.probe: the C mapping against scikit-learn, the config's checks,
and a probe run end to end: selection, refit, outputs, resume, refusals.
"""

import csv
import json
import os
import shutil

import jax
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression

from linear_jax import path, probe
from linear_jax.checks import LinearJaxError
from linear_jax.data import distributions
from linear_jax.model import load_model
from linear_jax.objective import objective
from linear_jax.train import run as train_run


def standardized(x):
  x = np.asarray(x, np.float64)
  return (x - x.mean(0)) / x.std(0)


def solve64(x, y, lams, num_classes):
  """The exact minimizers (float64, tight tolerances) for each λ."""
  return path.lambda_path(
    x,
    y,
    x[:1],
    y[:1],
    reg_strengths=lams,
    num_classes=num_classes,
    max_iter=3000,
    tol=1e-11,
    ftol=0.0,
  )


def sklearn_fit(x, y, c):
  return LogisticRegression(C=c, tol=1e-12, max_iter=20000).fit(x, y)


@jax.jit
def softmax_objective(params, x, y, lam):
  """The softmax objective at ``params`` (λ an argument: one program)."""
  return objective(params, x, y, loss="softmax", reg_strength=lam)


def objective64(w, b, lam, x, y):
  return float(softmax_objective({"W": w, "b": b}, x, y, lam))


@pytest.mark.slow
def test_binary_mapping_is_one_over_cn(x64):
  # scikit-learn fits one vector w = w1 − w0 for two classes; λ = 1/(CN)
  # gives its decision function and objective. λ = 1/(2CN), the multiclass
  # rule, solves scikit-learn's problem at 2C instead.
  x, y = load_breast_cancer(return_X_y=True)
  x, n = standardized(x), len(y)
  cs = np.array([1e-3, 1e-1, 1.0])
  lams = probe.reg_strength_from_C(cs, n, 2)
  np.testing.assert_allclose(lams, 1 / (cs * n), rtol=1e-15)
  ours = solve64(x, y, np.concatenate([lams, lams / 2]), 2)
  for k, c in enumerate(cs):
    for j, c_sklearn in ((k, c), (k + len(cs), 2 * c)):
      m = sklearn_fit(x, y, c_sklearn)
      w, b = ours.params["W"][j], ours.params["b"][j]
      theirs = m.decision_function(x)
      np.testing.assert_allclose(
        x @ (w[:, 1] - w[:, 0]) + (b[1] - b[0]),
        theirs,
        atol=1e-6 * np.abs(theirs).max(),
        err_msg=f"C={c_sklearn}",
      )
    # scikit-learn's w in the softmax layout: W = [−w/2, w/2].
    m = sklearn_fit(x, y, c)
    w = np.stack([-m.coef_[0], m.coef_[0]], 1) / 2
    b = np.array([-m.intercept_[0], m.intercept_[0]]) / 2
    np.testing.assert_allclose(
      objective64(w, b, lams[k], x, y), ours.objective[k], rtol=1e-9
    )
  # The wrong (multiclass) rule is far off: the test above can fail.
  m = sklearn_fit(x, y, cs[0])
  w = ours.params["W"][len(cs)]
  assert np.abs(w[:, 1] - w[:, 0] - m.coef_[0]).max() > 1e-2


@pytest.mark.slow
def test_multiclass_mapping_is_one_over_2cn(x64):
  x, y = load_wine(return_X_y=True)
  x, n = standardized(x), len(y)
  cs = np.array([1e-2, 1.0, 10.0])
  lams = probe.reg_strength_from_C(cs, n, 3)
  np.testing.assert_allclose(lams, 1 / (2 * cs * n), rtol=1e-15)
  ours = solve64(x, y, lams, 3)
  for k, c in enumerate(cs):
    m = sklearn_fit(x, y, c)
    theirs = m.decision_function(x)
    mine = x @ ours.params["W"][k] + ours.params["b"][k]
    # Scores are defined up to a shift per row (the intercepts' sum is free).
    mine = mine - mine.mean(1, keepdims=True)
    theirs = theirs - theirs.mean(1, keepdims=True)
    np.testing.assert_allclose(
      mine, theirs, atol=1e-6 * np.abs(theirs).max(), err_msg=f"C={c}"
    )
    np.testing.assert_allclose(
      objective64(m.coef_.T, m.intercept_, lams[k], x, y),
      ours.objective[k],
      rtol=1e-9,
    )


def test_c_mapping_round_trip_and_bad_values():
  lams = probe.reg_strength_from_C([0.5, 2.0], 100, 10)
  np.testing.assert_allclose(probe.c_from_reg_strength(lams, 100, 10), [0.5, 2])
  assert probe.reg_strength_from_C(0.5, 100, 2) == 1 / 50
  assert probe.c_from_reg_strength(0.0, 100, 3) == np.inf
  for bad in (0.0, -1.0, np.nan):
    with pytest.raises(LinearJaxError, match="C must be > 0"):
      probe.reg_strength_from_C(bad, 100, 3)
  with pytest.raises(LinearJaxError, match="≥ 2 classes"):
    probe.reg_strength_from_C(1.0, 100, 1)


@pytest.mark.parametrize(
  "change,words",
  [
    (dict(), "the grid is empty"),
    (dict(reg_strengths=()), "the grid is empty"),
    (dict(Cs=(1.0, 0.0)), "Cs must be > 0"),
    (dict(Cs=(-1.0,)), "Cs must be > 0"),
    (dict(reg_strengths=(1e-3, -1e-3)), "reg_strengths must be ≥ 0"),
    (dict(Cs=(1.0,), reg_strengths=(1.0,)), "pass one of them"),
    (dict(Cs=(1.0,), loss="svm"), "path cannot solve it"),
    (dict(Cs=(1.0,), loss="crammer_singer"), "path cannot solve it"),
    (dict(Cs=(1.0,), loss="hinge"), "unknown loss 'hinge'"),
    (dict(Cs=(1.0,), loss="squared_svm"), "--loss=softmax only"),
    (dict(Cs=(1.0,), resume=True, overwrite=True), "pass one of them"),
    (dict(Cs=(1.0,), validation_size=0), "validation_size must be ≥ 1"),
    (dict(Cs=(1.0,), max_iter=0), "max_iter must be ≥ 1"),
  ],
)
def test_bad_config_is_one_line(change, words):
  with pytest.raises(LinearJaxError) as e:
    probe.ProbeConfig(**change).validate()
  assert words in str(e.value) and "\n" not in str(e.value)


def test_squared_svm_takes_a_reg_strength_grid():
  config = probe.ProbeConfig(loss="squared_svm", reg_strengths=(0.0, 1e-2))
  lams, cs = config.validate().grid(100, 3)
  np.testing.assert_array_equal(lams, [0.0, 1e-2])
  assert np.isnan(cs).all()  # C belongs to LogisticRegression (softmax)


# ---------------------------------------------------------------- runs

CS = (1e-3, 1e-2, 1e-1, 1.0)


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
  """An .npz of 10 overlapping Gaussian classes in D = 12 (MNIST-1D's
  layout: x_train, y_train, x_test, y_test), 300 train / 100 test.
  """
  dist = distributions.gaussians(
    10, 12, means=np.random.default_rng(0).normal(size=(10, 12))
  )
  x, y = dist.sample(400, seed=1)
  file = tmp_path_factory.mktemp("data") / "feats.npz"
  np.savez(
    file, x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:]
  )
  return file


def config_for(feats, workdir, **change):
  values = dict(
    dataset=f"npz:{feats}",
    Cs=CS,
    max_iter=100,
    validation_size=60,
    workdir=str(workdir),
    plots=False,
  )
  values.update(change)
  return probe.ProbeConfig(**values)


def read_csv(file):
  with open(file) as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def probed(feats, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("probe") / "run"
  summary = probe.run(config_for(feats, workdir, plots=True))
  return workdir, summary


@pytest.mark.slow
def test_run_selects_on_validation_and_tests_once(probed, feats):
  workdir, summary = probed
  assert sorted(os.listdir(workdir)) == sorted(
    [
      "accuracy.png",
      "checkpoint.npz",
      "probe_checkpoint.npz",
      "results.csv",
      "results.md",
      "summary.json",
    ]
  )
  rows = read_csv(workdir / "results.csv")
  assert list(rows[0]) == list(probe.COLUMNS)
  assert [float(r["C"]) for r in rows] == list(CS)  # grid order
  lams = [float(r["reg_strength"]) for r in rows]
  np.testing.assert_allclose(lams, probe.reg_strength_from_C(CS, 240, 10))
  val = [float(r["val_accuracy"]) for r in rows]
  chosen = path.select(lams, val)
  assert [bool(r["test_accuracy"]) for r in rows] == [
    i == chosen for i in range(len(rows))
  ]
  assert summary["best_C"] == CS[chosen]
  assert summary["val_accuracy"] == val[chosen] == max(val)
  assert summary["test_accuracy"] == float(rows[chosen]["test_accuracy"])
  on_disk = json.loads((workdir / "summary.json").read_text())
  assert on_disk["best_reg_strength"] == lams[chosen]
  assert on_disk["config"]["Cs"] == list(CS)
  for r in rows:
    assert r["fit"] == "train" and 1 <= int(r["iterations"]) <= 100
    assert float(r["seconds"]) > 0 and float(r["grad_norm"]) >= 0
  # More regularization, a larger objective minimum.
  objectives = [float(r["objective"]) for r in rows]
  assert objectives == sorted(objectives, reverse=True)
  assert "**train**" in (workdir / "results.md").read_text()
  assert (workdir / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_checkpoint_is_the_selected_model(probed, feats):
  workdir, summary = probed
  model = load_model(str(workdir))
  with np.load(feats) as f:
    x_test, y_test = f["x_test"], f["y_test"]
  accuracy = float(np.mean(np.asarray(model.predict(x_test)) == y_test))
  assert accuracy == summary["test_accuracy"]
  assert model.class_names == tuple(str(c) for c in range(10))
  # The same params as the path over the whole grid gives for that λ.
  config = config_for(feats, workdir)
  dataset = train_run.load_data(config)
  lams, _ = config.grid(len(dataset.y_train), 10)
  r = path.lambda_path(
    dataset.x_train,
    dataset.y_train,
    dataset.x_val,
    dataset.y_val,
    reg_strengths=lams,
    num_classes=10,
    max_iter=100,
  )
  best = list(lams).index(summary["best_reg_strength"])
  np.testing.assert_array_equal(model.params["W"], r.params["W"][best])


@pytest.mark.slow
def test_resume_with_refit_reuses_the_path_and_keeps_c(
  probed, feats, monkeypatch
):
  workdir, summary = probed
  refit = workdir.parent / "refit"
  shutil.copytree(workdir, refit)
  solve, calls, starts = probe._solve_path, [], []

  def recorded(*a, **k):
    calls.extend(a[5])
    starts.append(k["init_params"])
    return solve(*a, **k)

  monkeypatch.setattr(probe, "_solve_path", recorded)
  result = probe.run(config_for(feats, refit, refit=True, resume=True))
  assert len(calls) == 1  # only the refit: every λ of the path was kept
  rows = read_csv(refit / "results.csv")
  assert rows[:-1] == [
    {**r, "test_accuracy": ""} for r in read_csv(workdir / "results.csv")
  ]
  last = rows[-1]
  assert last["fit"] == "train+val" and last["val_accuracy"] == ""
  assert float(last["C"]) == summary["best_C"]
  assert float(last["reg_strength"]) == pytest.approx(
    probe.reg_strength_from_C(summary["best_C"], 300, 10), rel=1e-12
  )
  assert calls == [float(last["reg_strength"])]
  # The refit starts at the selected λ's solution on train (the model the
  # run without refit saved).
  np.testing.assert_array_equal(
    starts[0]["W"], load_model(str(workdir)).params["W"]
  )
  assert [r["test_accuracy"] != "" for r in rows] == [False] * len(CS) + [True]
  assert result["test_accuracy"] == float(last["test_accuracy"])
  assert result["best_C"] == summary["best_C"]  # selected as before
  model = load_model(str(refit))
  with np.load(feats) as f:
    predicted = np.asarray(model.predict(f["x_test"]))
    assert float(np.mean(predicted == f["y_test"])) == result["test_accuracy"]


@pytest.mark.slow
def test_killed_probe_resumes_where_it_stopped(probed, feats, monkeypatch):
  workdir, _ = probed
  resumed = workdir.parent / "resumed"
  solve = probe._solve_path
  calls = []

  def killed_after_two(*args, callback, **kwargs):
    def report(k, params, row):
      if k == 2:
        raise KeyboardInterrupt
      callback(k, params, row)

    calls.extend(args[5])
    return solve(*args, callback=report, **kwargs)

  monkeypatch.setattr(probe, "_solve_path", killed_after_two)
  with pytest.raises(KeyboardInterrupt):
    probe.run(config_for(feats, resumed))
  assert sorted(os.listdir(resumed)) == ["probe_checkpoint.npz"]
  calls.clear()
  starts = []

  def recorded(*a, **k):
    calls.extend(a[5])
    starts.append(k["init_params"])
    return solve(*a, **k)

  monkeypatch.setattr(probe, "_solve_path", recorded)
  with pytest.raises(LinearJaxError, match="pass --resume"):
    probe.run(config_for(feats, resumed))
  with np.load(resumed / "probe_checkpoint.npz") as f:
    last = f["last/W"]
  probe.run(config_for(feats, resumed, resume=True))
  # The rest of the path starts at the last kept λ's solution.
  np.testing.assert_array_equal(starts[-1]["W"], last)
  assert np.abs(last).max() > 0
  # Largest λ (smallest C) first: the two smallest C were kept, and the rest
  # were solved in one path from the last kept solution.
  lams = probe.reg_strength_from_C(np.array(CS), 240, 10)
  np.testing.assert_allclose(calls, lams[2:])
  got, want = (
    read_csv(resumed / "results.csv"),
    read_csv(workdir / "results.csv"),
  )
  strip = lambda rows: [
    {k: v for k, v in r.items() if k != "seconds"} for r in rows
  ]
  assert strip(got[:2]) == strip(want[:2])
  # The resumed λ start from the same point but without the uninterrupted
  # path's L-BFGS pairs: the same minimizers to the solver's tolerance.
  for a, b in zip(got[2:], want[2:], strict=True):
    assert (a["reg_strength"], a["C"]) == (b["reg_strength"], b["C"])
    assert float(a["objective"]) == pytest.approx(float(b["objective"]), 1e-5)
    # At most one validation example may flip where scores nearly tie.
    assert abs(float(a["val_accuracy"]) - float(b["val_accuracy"])) <= 1.01 / 60


@pytest.mark.slow
@pytest.mark.parametrize(
  "change,words",
  [
    (dict(Cs=(1e-3, 1e-2)), "a probe of another grid"),
    (dict(seed=1), "a probe of other data"),
    (dict(standardize=True), "a probe of other data"),
    (dict(max_iter=50), "a probe of other solver settings"),
  ],
)
def test_resume_of_another_run_is_refused(probed, feats, change, words):
  workdir, _ = probed
  before = {p.name: p.stat().st_mtime_ns for p in workdir.iterdir()}
  with pytest.raises(LinearJaxError, match=words) as e:
    probe.run(config_for(feats, workdir, resume=True, **change))
  assert "\n" not in str(e.value)
  assert {p.name: p.stat().st_mtime_ns for p in workdir.iterdir()} == before


def test_workdir_of_another_run_is_refused_unless_overwrite(feats, tmp_path):
  workdir = tmp_path / "w"
  workdir.mkdir()
  (workdir / "metrics.jsonl").write_text("{}\n")  # a training run's
  with pytest.raises(LinearJaxError, match="metrics.jsonl exists") as e:
    probe.run(config_for(feats, workdir))
  assert "nothing was written" in str(e.value)
  with pytest.raises(LinearJaxError, match="no probe_checkpoint.npz"):
    probe.run(config_for(feats, workdir, resume=True))
  assert os.listdir(workdir) == ["metrics.jsonl"]
  probe.run(config_for(feats, workdir, Cs=(1.0,), overwrite=True))
  assert "metrics.jsonl" not in os.listdir(workdir)
  assert len(read_csv(workdir / "results.csv")) == 1
  (tmp_path / "file").write_text("")
  with pytest.raises(LinearJaxError, match="is a file, not a folder"):
    probe.run(config_for(feats, tmp_path / "file"))


def bad_npz(file, **change):
  rng = np.random.default_rng(0)
  arrays = dict(
    x_train=rng.normal(size=(50, 4)),
    y_train=np.arange(50) % 2,
    x_test=rng.normal(size=(10, 4)),
    y_test=np.arange(10) % 2,
  )
  arrays.update(change)
  np.savez(file, **arrays)
  return file


@pytest.mark.parametrize(
  "change,words",
  [
    (dict(x_test=np.full((10, 4), np.nan)), "NaN/Inf"),
    (dict(x_test=np.zeros((10, 5))), "different feature counts"),
    (dict(y_test=np.arange(10) % 3), "labels differ from the training labels"),
  ],
)
def test_bad_data_is_one_line_and_writes_nothing(tmp_path, change, words):
  feats = bad_npz(tmp_path / "bad.npz", **change)
  with pytest.raises(LinearJaxError, match=words) as e:
    probe.run(config_for(feats, tmp_path / "w"))
  assert "\n" not in str(e.value)
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_a_workdir_another_run_holds_is_refused(feats, tmp_path, lock_holder):
  workdir = tmp_path / "held"
  with lock_holder(workdir) as pid:
    with pytest.raises(LinearJaxError) as e:
      probe.run(config_for(feats, workdir))
    assert str(e.value).startswith(f"{workdir} is in use by PID {pid} on ")
    assert "\n" not in str(e.value)
    assert not any(os.path.lexists(workdir / name) for name in probe.OUTPUTS)
