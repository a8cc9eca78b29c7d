r"""Sparse text against LIBLINEAR: accuracy, training time, peak memory.

  flock /tmp/heavy.lock python -m benchmarks.sparse --cases=rcv1,news20
  flock /tmp/heavy.lock python -m benchmarks.sparse --cases=url --epochs=3 \
      --batch_size=4096 --pointers64
  flock /tmp/heavy.lock python -m benchmarks.sparse --cases=rcv1_svmlight
  python -m benchmarks.sparse --layouts          # the sparse layouts compared
  python -m benchmarks.sparse --densify          # dense vs sparse epochs
  python -m benchmarks.sparse --cases=rcv1 --tiny  # a smoke test, seconds

Run from the repository root. The data are synthetic
(``linear_jax.data.distributions.sparse_text``: TF-IDF rows with the shapes
of LIBSVM's rcv1, news20 and url sets, not the real sets), generated once per
seed into ``--data_dir`` as ``scipy.sparse.save_npz`` files with their
labels beside them (``*.labels.npy``), then read by every method.

Each (case, method) runs in its own process under ``/usr/bin/time -v``, so
its peak RSS ("Maximum resident set size") is its own; the bound is
2 × the CSR bytes of the data it holds + 1 GiB. Methods:

- ``linearsvc``: scikit-learn's ``LinearSVC()`` (LIBLINEAR, squared hinge,
  C = 1; one-vs-rest for several classes);
- ``liblinear_lr``: ``LogisticRegression(solver="liblinear")`` (LIBLINEAR;
  wrapped in ``OneVsRestClassifier`` for several classes, as LIBLINEAR's own
  ``-s 0`` does);
- ``saga``: ``LogisticRegression(solver="saga")`` (multinomial);
- ``ours_squared_svm``, ``ours_softmax``: ``linear_jax.train.fit`` on the
  CSR rows: momentum SGD (μ = 0.9), B = ``--batch_size``, learning rate
  ``--learning_rate``, ``--epochs`` epochs, λ from C = 1 by
  λ = 1/(C·N) for two classes and 1/(2·C·N) for more (``ΣW²`` against
  LIBLINEAR's ½‖w‖² per class; with two classes the symmetric columns
  W = [−w/2, w/2] give ΣW² = ½‖w‖²). ``train_seconds`` counts the epochs,
  ``compile_seconds`` the compilation; the test accuracy after each epoch is
  measured outside the timing, and ``seconds_to_target`` is the training time
  of the first epoch within 0.5 points of ``linearsvc`` (or
  ``liblinear_lr`` for softmax);
- ``mapping``: the C mapping checked: the softmax objective at λ(C = 1)
  solved to convergence (``linear_jax.sparse_path``) against scikit-learn's
  ``LogisticRegression(solver="lbfgs", C=1)`` (unregularized intercept, as
  here): both solutions' objective values and their prediction agreement.

``--cases=rcv1_svmlight`` writes the 677,399-row rcv1-shape test split as an
svmlight file and runs ``experiments.train`` on it (``svmlight:`` loading,
sparse training, evaluation) and ``experiments.predict`` on it, each under
``/usr/bin/time -v``. ``--layouts`` times one training epoch (plain SGD,
B = 256) of each sparse layout considered: CSR windows gathered into ELL
blocks (the library's), ``jax.experimental.sparse.BCOO`` blocks, and CSR
element gathers with ``segment_sum``. ``--densify`` times one epoch of the
same random rows stored dense and sparse, at densities around the densify
rule (``linear_jax.sparse.should_densify``).

Writes ``--out`` (JSON: header, every row) and prints a markdown table.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags


def define_flags() -> None:
  """The script's flags (defined when run, not when imported by tests)."""
  flags.DEFINE_list(
    "cases", ["rcv1", "news20"], "rcv1, news20, url, rcv1_svmlight"
  )
  flags.DEFINE_list(
    "methods",
    [
      "linearsvc",
      "liblinear_lr",
      "saga",
      "ours_squared_svm",
      "ours_softmax",
      "mapping",
    ],
    "methods of the rcv1/news20 cases (url: ours_squared_svm only)",
  )
  flags.DEFINE_string("data_dir", "/tmp/sparse_bench", "generated data cache")
  flags.DEFINE_string("out", None, "JSON results (default: print only)")
  flags.DEFINE_integer("seed", 0, "seed of the synthetic draw")
  flags.DEFINE_integer("epochs", 5, "epochs of our recipe")
  flags.DEFINE_integer("batch_size", 256, "minibatch of our recipe")
  flags.DEFINE_float("learning_rate", 0.5, "learning rate of our recipe")
  flags.DEFINE_bool("tiny", False, "small shapes: a smoke test of the script")
  flags.DEFINE_bool(
    "pointers64",
    False,
    "ours: 64-bit row pointers on the device (jax_enable_x64), the layout "
    "data above 2^31 non-zeros need",
  )
  flags.DEFINE_bool("layouts", False, "time the sparse layouts instead")
  flags.DEFINE_bool(
    "densify", False, "time dense against sparse epochs around the densify rule"
  )
  flags.DEFINE_string("child", None, "internal: run one method, print JSON")
  flags.DEFINE_string("case", None, "internal: the child's case")


FLAGS = flags.FLAGS
GIB = 1 << 30
TARGET_POINTS = 0.5  # accuracy within this many points of LIBLINEAR's


# ------------------------------------------------------------------ data


def spec_for(case: str, tiny: bool):
  """The ``SparseText`` of a case (smaller for ``--tiny``)."""
  from linear_jax.data import distributions  # pylint: disable=g-import-not-at-top

  base = "rcv1" if case == "rcv1_svmlight" else case
  spec = distributions.sparse_text(base)
  if tiny:
    import dataclasses  # pylint: disable=g-import-not-at-top

    spec = dataclasses.replace(spec, train_size=2000, test_size=1000)
  return spec


def data_paths(case: str) -> dict:
  """Where a case's generated splits are cached."""
  root = (
    Path(FLAGS.data_dir) / f"{case}{'-tiny' if FLAGS.tiny else ''}-{FLAGS.seed}"
  )
  return {"root": root, "train": root / "train.npz", "test": root / "test.npz"}


def prepare(case: str) -> dict:
  """Generates and caches a case's splits once; their sizes."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  from linear_jax.data import sparse_source  # pylint: disable=g-import-not-at-top

  base = "rcv1" if case == "rcv1_svmlight" else case
  paths = data_paths(base)
  meta_path = paths["root"] / "meta.json"
  if not meta_path.exists():
    spec = spec_for(base, FLAGS.tiny)
    paths["root"].mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for split, size, seed in (
      ("train", spec.train_size, [FLAGS.seed, 0]),
      ("test", spec.test_size, [FLAGS.seed, 1]),
    ):
      x, y = spec.sample(size, seed=seed)
      scipy.sparse.save_npz(paths[split], x, compressed=False)
      np.save(sparse_source.labels_path(paths[split]), y)
      del x, y
    meta = {"generate_seconds": time.perf_counter() - t0}
    for split in ("train", "test"):
      x = scipy.sparse.load_npz(paths[split])
      meta[split] = {
        "rows": int(x.shape[0]),
        "features": int(x.shape[1]),
        "nnz": int(x.nnz),
        "csr_bytes": int(x.data.nbytes + x.indices.nbytes + x.indptr.nbytes),
      }
      del x
    meta_path.write_text(json.dumps(meta))
  return json.loads(meta_path.read_text())


def load_split(path):
  """``(CSR float32, int32 labels)`` of a cached split."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  from linear_jax import sparse  # pylint: disable=g-import-not-at-top
  from linear_jax.data import sparse_source  # pylint: disable=g-import-not-at-top

  x = sparse.as_csr(scipy.sparse.load_npz(path), str(path))
  return x, np.load(sparse_source.labels_path(path)).astype(np.int32)


def reg_strength(c: float, n: int, num_classes: int) -> float:
  """λ for LIBLINEAR's C: 1/(C·N) with two classes, 1/(2·C·N) with more."""
  return 1.0 / (c * n) if num_classes == 2 else 1.0 / (2.0 * c * n)


# ---------------------------------------------------------------- methods


def run_sklearn(method: str, x, y, xt, yt) -> dict:
  """One scikit-learn estimator: fit time and test accuracy."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  from sklearn.multiclass import OneVsRestClassifier  # pylint: disable=g-import-not-at-top
  from sklearn.svm import LinearSVC  # pylint: disable=g-import-not-at-top

  binary = len(np.unique(y)) == 2
  if method == "linearsvc":
    est = LinearSVC()
  elif method == "liblinear_lr":
    est = LogisticRegression(solver="liblinear")
    est = est if binary else OneVsRestClassifier(est)
  else:
    est = LogisticRegression(solver="saga")
  t0 = time.perf_counter()
  est.fit(x, y)
  seconds = time.perf_counter() - t0
  return {
    "train_seconds": seconds,
    "compile_seconds": 0.0,
    "test_accuracy": float(est.score(xt, yt)),
    "estimator": repr(est),
  }


def run_ours(method: str, x, y, xt, yt) -> dict:
  """linear_jax's sparse minibatch training, per-epoch test accuracy."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from linear_jax import sparse  # pylint: disable=g-import-not-at-top
  from linear_jax.train import DeviceData, loop  # pylint: disable=g-import-not-at-top
  from linear_jax.train import epoch as epoch_lib  # pylint: disable=g-import-not-at-top

  loss = method.removeprefix("ours_")
  num_classes = int(y.max()) + 1
  n = x.shape[0]
  lam = reg_strength(1.0, n, num_classes)
  config = epoch_lib.TrainConfig(
    loss=loss,
    optimizer="momentum",
    batch_size=FLAGS.batch_size,
    epochs=FLAGS.epochs,
  )
  hparams = epoch_lib.make_hparams(
    learning_rate=FLAGS.learning_rate, reg_strength=lam, momentum=0.9
  )
  # All training rows train (as LIBLINEAR's); one row stands in for the
  # validation split, whose accuracy is not used.
  data = DeviceData.put(x, y, x[:1], y[:1])
  if FLAGS.pointers64:  # the layout of nnz ≥ 2³¹, forced at this size
    import dataclasses  # pylint: disable=g-import-not-at-top

    wide = jax.device_put(np.asarray(x.indptr, np.int64))
    data = data._replace(x_train=dataclasses.replace(data.x_train, indptr=wide))
    assert data.x_train.indptr.dtype == jnp.int64
  test_rows, test_labels = sparse.to_device(xt), jnp.asarray(yt)
  curve = []

  def on_epoch(progress):
    accuracy = sparse.jit_accuracy(
      progress.state.params, test_rows, test_labels
    )
    curve.append(
      {
        "epoch": progress.epochs_done,
        "seconds": sum(h["seconds"] for h in progress.history),
        "test_accuracy": float(accuracy),
      }
    )

  result = loop.fit(
    config,
    hparams,
    data,
    seed=0,
    num_classes=num_classes,
    on_epoch=on_epoch,
    log=False,
  )
  jax.block_until_ready(result.params)
  return {
    "train_seconds": result.train_seconds,
    "compile_seconds": result.compile_seconds,
    "test_accuracy": curve[-1]["test_accuracy"],
    "curve": curve,
    "reg_strength": lam,
    "recipe": (
      f"{loss}, momentum 0.9, B={FLAGS.batch_size}, lr={FLAGS.learning_rate}"
      f", {FLAGS.epochs} epochs, λ={lam:.3g}"
    ),
    "max_row_nnz": int(np.diff(x.indptr).max()),
    "row_pointers": str(data.x_train.indptr.dtype),
  }


def run_mapping(x, y, xt, yt) -> dict:
  """The C mapping checked against scikit-learn's L-BFGS logistic fit."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top

  from linear_jax import sparse_path  # pylint: disable=g-import-not-at-top

  num_classes = int(y.max()) + 1
  n = x.shape[0]
  lam = reg_strength(1.0, n, num_classes)
  t0 = time.perf_counter()
  ours = sparse_path.sparse_lambda_path(
    x,
    y,
    xt,
    yt,
    reg_strengths=[lam],
    loss="softmax",
    max_iter=2000,
    tol=1e-7,
    ftol=1e-10,
  )
  ours_seconds = time.perf_counter() - t0
  t0 = time.perf_counter()
  ref = LogisticRegression(solver="lbfgs", C=1.0, tol=1e-8, max_iter=5000)
  ref.fit(x, y)
  ref_seconds = time.perf_counter() - t0
  w, b = ours.params["W"][0].astype(np.float64), ours.params["b"][0]
  if num_classes == 2:  # sklearn's w is the score difference s_1 − s_0
    ref_w = np.stack([-ref.coef_[0] / 2, ref.coef_[0] / 2], axis=1)
    ref_b = np.array([-ref.intercept_[0] / 2, ref.intercept_[0] / 2])
  else:
    ref_w, ref_b = ref.coef_.T, ref.intercept_

  def objective(weights, bias):  # float64 on the host: (1/N)ΣL_i + λΣW²
    s = x @ weights + bias
    s -= s.max(axis=1, keepdims=True)
    log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(n), y].mean() + lam * np.sum(weights**2))

  ours_pred = np.argmax(xt @ w + b, axis=1)
  return {
    "reg_strength": lam,
    "objective_ours": objective(w, b),
    "objective_sklearn": objective(ref_w, ref_b),
    "relative_weight_difference": float(
      np.linalg.norm(w - ref_w) / np.linalg.norm(ref_w)
    ),
    "prediction_agreement": float(np.mean(ours_pred == ref.predict(xt))),
    "test_accuracy": float(np.mean(ours_pred == yt)),
    "test_accuracy_sklearn": float(ref.score(xt, yt)),
    "iterations": int(ours.iterations[0]),
    "train_seconds": ours_seconds,
    "sklearn_seconds": ref_seconds,
  }


def child(method: str, case: str) -> dict:
  """One method on one case, in this process."""
  if FLAGS.pointers64:
    import jax  # pylint: disable=g-import-not-at-top

    jax.config.update("jax_enable_x64", True)
  base = "rcv1" if case == "rcv1_svmlight" else case
  prepare(base)  # cached: generated once per seed and size
  paths = data_paths(base)
  x, y = load_split(paths["train"])
  xt, yt = load_split(paths["test"])
  if method.startswith("ours_"):
    return run_ours(method, x, y, xt, yt)
  if method == "mapping":
    return run_mapping(x, y, xt, yt)
  return run_sklearn(method, x, y, xt, yt)


# ----------------------------------------------------------------- driver


def max_rss_bytes(stderr: str) -> int | None:
  """Peak RSS from ``/usr/bin/time -v``'s report."""
  found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
  return int(found.group(1)) * 1024 if found else None


def timed_process(argv: list) -> tuple[subprocess.CompletedProcess, int | None]:
  """Runs ``argv`` under ``/usr/bin/time -v``; (process, peak RSS bytes)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(
    ["/usr/bin/time", "-v", *argv],
    capture_output=True,
    text=True,
    env=env,
    check=False,
  )
  return proc, max_rss_bytes(proc.stderr)


def run_child(method: str, case: str) -> dict:
  """A method in its own process; its JSON plus peak RSS."""
  argv = [
    sys.executable,
    "-m",
    "benchmarks.sparse",
    f"--child={method}",
    f"--case={case}",
    f"--data_dir={FLAGS.data_dir}",
    f"--seed={FLAGS.seed}",
    f"--epochs={FLAGS.epochs}",
    f"--batch_size={FLAGS.batch_size}",
    f"--learning_rate={FLAGS.learning_rate}",
  ]
  argv += ["--tiny"] if FLAGS.tiny else []
  argv += ["--pointers64"] if FLAGS.pointers64 else []
  proc, rss = timed_process(argv)
  lines = [s for s in proc.stdout.splitlines() if s.startswith("{")]
  if proc.returncode != 0 or not lines:
    return {"error": proc.stderr.strip().splitlines()[-3:], "peak_rss": rss}
  row = json.loads(lines[-1])
  row["peak_rss"] = rss
  return row


def svmlight_case(meta: dict) -> list[dict]:
  """Train and predict binaries on the rcv1-shape test split as svmlight."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import dump_svmlight_file  # pylint: disable=g-import-not-at-top

  paths = data_paths("rcv1")
  text = paths["root"] / "test.svm"
  if not text.exists():
    x, y = load_split(paths["test"])
    t0 = time.perf_counter()
    dump_svmlight_file(x, y, str(text) + ".tmp", zero_based=False)
    os.replace(str(text) + ".tmp", text)
    print(f"wrote {text} in {time.perf_counter() - t0:.0f} s", flush=True)
    del x, y
  rows = meta["test"]["rows"]
  lam = reg_strength(1.0, int(rows * 0.8 * 0.9), 2)
  workdir = paths["root"] / "svmlight_run"
  for name in ("checkpoint.npz", "metrics.jsonl", "summary.json"):
    (workdir / name).unlink(missing_ok=True)
  out = paths["root"] / "svmlight_predictions.npz"
  out.unlink(missing_ok=True)
  train_argv = [
    sys.executable,
    "-m",
    "experiments.train",
    f"--dataset=svmlight:{text}",
    "--loss=squared_svm",
    f"--reg_strength={lam}",
    f"--learning_rate={FLAGS.learning_rate}",
    f"--batch_size={FLAGS.batch_size}",
    f"--epochs={FLAGS.epochs}",
    "--plots=false",
    f"--workdir={workdir}",
  ]
  predict_argv = [
    sys.executable,
    "-m",
    "experiments.predict",
    f"--workdir={workdir}",
    f"--input=svmlight:{text}",
    f"--output={out}",
  ]
  csr = meta["test"]["csr_bytes"]
  results = []
  for what, argv in (("train", train_argv), ("predict", predict_argv)):
    t0 = time.perf_counter()
    proc, rss = timed_process(argv)
    row = {
      "case": "rcv1_svmlight",
      "method": f"experiments.{what}",
      "wall_seconds": time.perf_counter() - t0,
      "peak_rss": rss,
      "bound": 2 * csr + GIB,
      "csr_bytes": csr,
      "text_bytes": text.stat().st_size,
      "returncode": proc.returncode,
      "stdout": proc.stdout.strip().splitlines()[-1:],
    }
    if proc.returncode != 0:
      row["error"] = proc.stderr.strip().splitlines()[-3:]
    if what == "train" and (workdir / "summary.json").exists():
      summary = json.loads((workdir / "summary.json").read_text())
      row.update(
        {
          k: summary[k]
          for k in (
            "test_accuracy",
            "train_seconds",
            "compile_seconds",
            "load_seconds",
            "num_train",
          )
        }
      )
    results.append(row)
    print(json.dumps(row), flush=True)
  del np
  return results


def layouts() -> list[dict]:
  """One plain-SGD epoch per sparse layout, on the rcv1 and news20 shapes."""
  return layout_rows("rcv1") + layout_rows("news20")


def layout_rows(case: str) -> list[dict]:
  """``layouts`` on one case's training split."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.experimental import sparse as jsparse  # pylint: disable=g-import-not-at-top

  from benchmarks import timing  # pylint: disable=g-import-not-at-top
  from linear_jax import losses, sparse  # pylint: disable=g-import-not-at-top

  rows_out = []
  prepare(case)
  x, y = load_split(data_paths(case)["train"])
  n, d = x.shape
  c = int(y.max()) + 1
  b = 256
  steps = n // b
  csr = sparse.to_device(x)
  k = csr.width
  y_dev = jnp.asarray(y)
  cap = int(np.sort(np.diff(x.indptr))[-b:].sum())

  def windows(w, idx):
    return sparse.scores({"W": w}, csr.rows(idx))

  def bcoo(w, idx):
    block = csr.rows(idx)
    coords = jnp.stack(
      [jnp.repeat(jnp.arange(b), k), block.columns.reshape(-1)], axis=1
    )
    m = jsparse.BCOO((block.values.reshape(-1), coords), shape=(b, d))
    return m @ w

  def segment(w, idx):
    # CSR element gathers: each slot's row found by a search of the
    # batch's offsets, then segment_sum of the products.
    start = csr.indptr[idx]
    length = csr.indptr[idx + 1] - start
    offsets = jnp.cumsum(length) - length
    slot = jnp.arange(cap)
    r = jnp.searchsorted(offsets, slot, side="right") - 1
    p = start[r] + slot - offsets[r]
    valid = slot < offsets[-1] + length[-1]
    p = jnp.where(valid, p, 0)
    v = jnp.where(valid, csr.data[p], 0.0)
    return jax.ops.segment_sum(
      v[:, None] * w[csr.indices[p]], r, num_segments=b
    )

  for name, score_fn in (
    ("CSR windows -> ELL block (linear_jax)", windows),
    ("BCOO (jax.experimental.sparse)", bcoo),
    ("CSR element gathers + segment_sum", segment),
  ):

    def epoch(w, key, score_fn=score_fn):
      perm = jax.random.permutation(key, n)[: steps * b].reshape(steps, b)

      def step(w, idx):
        def objective(w):
          s = score_fn(w, idx)
          return jnp.mean(losses.softmax_cross_entropy(s, y_dev[idx]))

        g = jax.grad(objective)(w)
        return w - 0.5 * (g + 1e-5 * w), None

      return jax.lax.scan(step, w, perm)[0]

    fn = jax.jit(epoch)
    w0 = jnp.zeros((d, c))
    t0 = time.perf_counter()
    fn.lower(w0, jax.random.key(0)).compile()
    compile_seconds = time.perf_counter() - t0
    seconds = timing.median_seconds(fn, w0, jax.random.key(1), repeats=5)
    row = {
      "case": case,
      "layout": name,
      "epoch_seconds": seconds,
      "compile_seconds": compile_seconds,
      "nnz": int(x.nnz),
      "classes": c,
    }
    rows_out.append(row)
    print(json.dumps(row), flush=True)
  return rows_out


def densify_rows() -> list[dict]:
  """One softmax epoch (B = 256, C = 10) of random rows, dense and sparse,
  at several densities: where dense rows start to pay.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import scipy.sparse  # pylint: disable=g-import-not-at-top

  from benchmarks import timing  # pylint: disable=g-import-not-at-top
  from linear_jax.train import DeviceData  # pylint: disable=g-import-not-at-top
  from linear_jax.train import epoch as epoch_lib  # pylint: disable=g-import-not-at-top

  n, c = 8192, 10
  config = epoch_lib.TrainConfig(loss="softmax", batch_size=256, epochs=1)
  hp = epoch_lib.make_hparams(learning_rate=0.1)
  epoch = jax.jit(lambda s, h, d: epoch_lib.train_epoch(s, h, d, config=config))
  y = np.random.default_rng(0).integers(0, c, n)
  out = []
  for d, per_row in (
    (1000, 500),
    (1000, 250),
    (1000, 125),
    (1000, 60),
    (4000, 500),
    (4000, 250),
    (4000, 60),
  ):
    x = scipy.sparse.random(
      n,
      d,
      density=per_row / d,
      format="csr",
      random_state=1,
      dtype=np.float32,
    )
    row = {
      "features": d,
      "nnz_per_row": per_row,
      "dense_over_csr_bytes": n * d * 4 / (x.nnz * 8 + (n + 1) * 4),
    }
    for layout, data in (
      ("dense", DeviceData.put(x.toarray(), y, x[:1].toarray(), y[:1])),
      ("sparse", DeviceData.put(x, y, x[:1], y[:1])),
    ):
      state = epoch_lib.init_state(config, hp, 0, d, c, n)
      row[f"{layout}_epoch_seconds"] = timing.median_seconds(
        epoch, state, hp, data, repeats=5
      )
    out.append(row)
    print(json.dumps(row), flush=True)
  return out


def header() -> dict:
  """Date, machine and versions of this run."""
  import platform  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import sklearn  # pylint: disable=g-import-not-at-top

  model = ""
  try:
    with open("/proc/cpuinfo") as f:
      model = next(
        (
          line.split(":", 1)[1].strip()
          for line in f
          if line.startswith("model name")
        ),
        "",
      )
  except OSError:
    pass
  return {
    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "machine": f"{model}, {os.cpu_count()} cores",
    "python": platform.python_version(),
    "jax": jax.__version__,
    "sklearn": sklearn.__version__,
    "command": " ".join(sys.argv),
  }


def table(rows: list[dict]) -> str:
  """The markdown table of the rcv1/news20/url rows."""
  lines = [
    "| case | method | test acc | train s | compile s | s to target | "
    "peak RSS | bound |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    if "error" in r or "train_seconds" not in r:
      continue
    to_target = r.get("seconds_to_target")
    lines.append(
      f"| {r['case']} | {r['method']} | {100 * r['test_accuracy']:.2f} % | "
      f"{r['train_seconds']:.2f} | {r.get('compile_seconds', 0):.2f} | "
      f"{'' if to_target is None else f'{to_target:.2f}'} | "
      f"{(r['peak_rss'] or 0) / GIB:.2f} GiB | {r['bound'] / GIB:.2f} GiB |"
    )
  return "\n".join(lines)


def main(argv):
  """Runs the cases (or one child, or the layouts) and prints the table."""
  del argv
  if FLAGS.child:
    print(json.dumps(child(FLAGS.child, FLAGS.case)), flush=True)
    return
  out = {"header": header(), "rows": []}
  if FLAGS.layouts:
    out["layouts"] = layouts()
  if FLAGS.densify:
    out["densify"] = densify_rows()
  for case in [] if FLAGS.layouts or FLAGS.densify else FLAGS.cases:
    meta = prepare(case)
    print(f"{case}: {json.dumps(meta)}", flush=True)
    if case == "rcv1_svmlight":
      out["rows"] += svmlight_case(meta)
      continue
    csr = meta["train"]["csr_bytes"] + meta["test"]["csr_bytes"]
    methods = ["ours_squared_svm"] if case == "url" else FLAGS.methods
    results = {}
    for method in methods:
      row = {"case": case, "method": method, **run_child(method, case)}
      row["bound"] = 2 * csr + GIB
      row["csr_bytes"] = csr
      results[method] = row
      print(json.dumps(row), flush=True)
    for method, ref in (
      ("ours_squared_svm", "linearsvc"),
      ("ours_softmax", "liblinear_lr"),
    ):
      row, base = results.get(method), results.get(ref)
      if row and base and "curve" in row and "test_accuracy" in base:
        target = base["test_accuracy"] - TARGET_POINTS / 100
        hit = [p for p in row["curve"] if p["test_accuracy"] >= target]
        row["target_accuracy"] = target
        row["seconds_to_target"] = hit[0]["seconds"] if hit else None
    out["rows"] += list(results.values())
  print(table(out["rows"]))
  if FLAGS.out:
    Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
    Path(FLAGS.out).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
  define_flags()
  app.run(main)
