r"""λ path: ``linear_jax.path.lambda_path`` beside scikit-learn's L-BFGS loop.

Both fit softmax regression, L = (1/N) Σ CE_i + λ ΣW² with b unregularized,
along the same 16-value C path, on the same arrays, in the same process, one
after the other. scikit-learn's ``LogisticRegression(solver="lbfgs", C=C)``
minimizes C Σ CE_i + ½‖W‖², i.e. the same problem with λ = 1/(2·C·N); both
solutions are scored with this objective in float64 here. Reported: wall time
of each whole path (compilation included for linear_jax), per C the two
objectives, validation and test accuracies, and the selected C.

    LINEAR_JAX_CIFAR10_JPEG=/path/to/cifar10-jpeg.tar.gz \
        python -m benchmarks.lambda_path --features=pixels \
        --max_train=2000
    LINEAR_JAX_CIFAR10_JPEG=/path/to/cifar10-jpeg.tar.gz \
        python -m benchmarks.lambda_path --features=relu \
        --relu_dim=8192 --max_train=1000

Runs on whatever device JAX picks (``JAX_PLATFORMS=cuda`` for a GPU; there
``--strategy=vmap``, the default on accelerators, and ``--strategy=warm``
compare the two ways of solving the path); raw results go to
``benchmarks/results/lambda_path_<features>_<N>_<platform>.json``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from absl import flags

from benchmarks import timing
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "cifar10_jpeg", "linear_jax dataset name.")
flags.DEFINE_enum(
  "features",
  "pixels",
  ["pixels", "relu"],
  "standardized pixels, or random ReLU features of them.",
)
flags.DEFINE_integer("relu_dim", 8192, "width of the random ReLU features.")
flags.DEFINE_integer("max_train", 2000, "training examples used (0: all).")
flags.DEFINE_integer("max_test", 2000, "test examples used (0: all).")
flags.DEFINE_integer("num_c", 16, "values on the C path.")
flags.DEFINE_float("c_min", 1e-5, "smallest C.")
flags.DEFINE_float("c_max", 1.0, "largest C.")
flags.DEFINE_integer("sklearn_max_iter", 1000, "scikit-learn max_iter.")
flags.DEFINE_float("sklearn_tol", 1e-6, "scikit-learn tol.")
flags.DEFINE_integer("rank", 256, "Nyström preconditioner rank.")
flags.DEFINE_bool("sklearn", True, "also run the scikit-learn loop.")
flags.DEFINE_enum(
  "strategy",
  "auto",
  ["auto", "warm", "vmap"],
  "lambda_path's warm_start: auto (warm on CPU, vmap on "
  "accelerators), warm or vmap.",
)
flags.DEFINE_string("out", "benchmarks/results", "folder of the JSON results.")


def softmax_objective(w, b, lam, x, y) -> float:
  """L = mean CE + λ ΣW² in float64 (the objective both peers minimize)."""
  s = x.astype(np.float64) @ np.asarray(w, np.float64) + np.asarray(
    b, np.float64
  )
  s -= s.max(axis=1, keepdims=True)
  lse = np.log(np.exp(s).sum(axis=1))
  return float(
    np.mean(lse - s[np.arange(len(y)), y])
    + lam * np.sum(np.asarray(w, np.float64) ** 2)
  )


def relu_features(ds, dim: int, seed: int = 0):
  """X ↦ max(0, xΩ/√D) with Gaussian Ω, standardized on train (made offline)."""
  from linear_jax.data import preprocessing  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  omega = rng.standard_normal((ds.x_train.shape[1], dim)).astype(np.float32)
  omega /= np.sqrt(ds.x_train.shape[1])
  feats = [np.maximum(x @ omega, 0) for x in (ds.x_train, ds.x_val, ds.x_test)]
  stats = preprocessing.fit_stats(feats[0], standardize=True)
  return [stats.apply(f) for f in feats]


def main(argv):
  """Times both paths on the flagged data and writes the JSON results."""
  del argv
  import jax  # pylint: disable=g-import-not-at-top

  from linear_jax import io as io_lib  # pylint: disable=g-import-not-at-top
  from linear_jax import path  # pylint: disable=g-import-not-at-top
  from linear_jax.data import load_dataset  # pylint: disable=g-import-not-at-top

  ds = load_dataset(
    FLAGS.dataset, standardize=True, max_train=FLAGS.max_train or None
  )
  x_tr, x_va, x_te = ds.x_train, ds.x_val, ds.x_test
  y_tr, y_va, y_te = ds.y_train, ds.y_val, ds.y_test
  if FLAGS.features == "relu":
    x_tr, x_va, x_te = relu_features(ds, FLAGS.relu_dim)
  if FLAGS.max_test:
    x_te, y_te = x_te[: FLAGS.max_test], y_te[: FLAGS.max_test]
  n, d = x_tr.shape
  cs = np.logspace(np.log10(FLAGS.c_min), np.log10(FLAGS.c_max), FLAGS.num_c)
  lams = 1.0 / (2.0 * cs * n)
  print(
    f"N={n} D={d} C={ds.num_classes} val={len(y_va)} test={len(y_te)} "
    f"device={jax.devices()[0].device_kind}",
    flush=True,
  )

  t0 = time.perf_counter()
  result = path.lambda_path(
    x_tr,
    y_tr,
    x_va,
    y_va,
    x_te,
    y_te,
    reg_strengths=lams,
    rank=FLAGS.rank,
    num_classes=ds.num_classes,
    warm_start={"auto": None, "warm": True, "vmap": False}[FLAGS.strategy],
  )
  ours_seconds = time.perf_counter() - t0
  print(
    f"linear_jax path: {ours_seconds:.2f} s, iterations "
    f"{result.iterations.tolist()}",
    flush=True,
  )
  rows = []
  for k, c in enumerate(cs):
    rows.append(
      {
        "C": float(c),
        "lambda": float(lams[k]),
        "ours_objective": softmax_objective(
          result.params["W"][k], result.params["b"][k], lams[k], x_tr, y_tr
        ),
        "ours_iterations": int(result.iterations[k]),
        "ours_val_accuracy": float(result.val_accuracy[k]),
        "ours_test_accuracy": float(result.test_accuracy[k]),
      }
    )

  sk_seconds = None
  sk_best = None
  if FLAGS.sklearn:
    from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top

    t0 = time.perf_counter()
    models = []
    for c in cs:
      models.append(
        LogisticRegression(
          C=c,
          solver="lbfgs",
          max_iter=FLAGS.sklearn_max_iter,
          tol=FLAGS.sklearn_tol,
        ).fit(x_tr, y_tr)
      )
      print(
        f"  C={c:.3g}: {time.perf_counter() - t0:.1f} s so far, "
        f"{int(np.max(models[-1].n_iter_))} iterations",
        flush=True,
      )
    sk_seconds = time.perf_counter() - t0
    print(f"scikit-learn loop: {sk_seconds:.2f} s", flush=True)
    for k, (row, m) in enumerate(zip(rows, models, strict=True)):
      row["sklearn_objective"] = softmax_objective(
        m.coef_.T, m.intercept_, lams[k], x_tr, y_tr
      )
      row["sklearn_iterations"] = int(np.max(m.n_iter_))
      row["sklearn_val_accuracy"] = float(m.score(x_va, y_va))
      row["sklearn_test_accuracy"] = float(m.score(x_te, y_te))
      row["relative_objective_gap"] = (
        row["ours_objective"] - row["sklearn_objective"]
      ) / row["sklearn_objective"]
    sk_best = path.select(lams, [r["sklearn_val_accuracy"] for r in rows])

  summary = {
    **timing.header(
      " ".join(["python -m benchmarks.lambda_path"] + sys.argv[1:])
    ),
    "num_train": n,
    "num_features": d,
    "num_val": int(len(y_va)),
    "num_test": int(len(y_te)),
    "ours_seconds": ours_seconds,
    "sklearn_seconds": sk_seconds,
    "speedup": None if sk_seconds is None else sk_seconds / ours_seconds,
    "ours_best": result.best,
    "sklearn_best": sk_best,
    "ours_best_test_accuracy": float(result.test_accuracy[result.best]),
    "sklearn_best_test_accuracy": (
      None if sk_best is None else rows[sk_best]["sklearn_test_accuracy"]
    ),
    "max_abs_relative_objective_gap": (
      None
      if sk_seconds is None
      else max(abs(r["relative_objective_gap"]) for r in rows)
    ),
    "rows": rows,
  }
  os.makedirs(FLAGS.out, exist_ok=True)
  out = os.path.join(
    FLAGS.out,
    f"lambda_path_{FLAGS.features}_{n}_{jax.devices()[0].platform}.json",
  )
  io_lib.write_json(out, summary)
  for r in rows:
    print(
      " ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in r.items()
      )
    )
  print({k: v for k, v in summary.items() if k != "rows"})
  print("wrote", out)


if __name__ == "__main__":
  cli.start(main)
