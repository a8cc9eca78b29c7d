r"""The linear probe at scale: C = 1,000 classes, and ImageNet's shape.

``--mode=path``: ``linear_jax.path.lambda_path`` against scikit-learn's
``LogisticRegression(solver="lbfgs")`` fitted once per C, over the same
16-value C grid, on the same arrays, in the same process (scikit-learn
first). Shape N = 20,000, D = 512, C = 1,000 (val 5,000, test 10,000) of
synthetic features (``synthetic_features``). Both solutions are scored
with L = (1/N) Σ CE_i + λ ΣW² in float64, λ = ``reg_strength_from_C``.
Reported: the wall time of each whole path (linear_jax's includes
compilation), per C both objectives, iterations, accuracies, the selected C;
and linear_jax's seconds per objective-and-gradient evaluation against the
matmul ceiling measured in the same run (4·N·D·C FLOPs per evaluation).

    python -m benchmarks.probe --mode=path

``--mode=memory``: the ImageNet shape, 1,281,167 × 2,048 features stored as
float16 (5.2 GB), C = 1,000, generated block by block straight into the
float16 array (no float32 copy), then a λ path of one λ and a few L-BFGS
iterations. Reported: seconds per evaluation and the phases; the peak RSS
comes from ``/usr/bin/time -v``:

    /usr/bin/time -v python -m benchmarks.probe --mode=memory

``--mode=evaluation``: the path-mode shape and data; one objective-and-
gradient pass as the path's L-BFGS runs it on a CPU (``row_blocks.pass_sums``
with every sum it keeps, over row blocks of the size the path picks on a
CPU for one λ, centred implicitly, the rows passed as arguments), compiled
once, then the median of ``--repeats`` calls, between two measurements of
the matmul ceiling (4·N·D·C FLOPs per evaluation):

    python -m benchmarks.probe --mode=evaluation

Raw results go to ``benchmarks/results/probe_<mode>_<N>x<D>x<C>_<storage>.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib

import numpy as np
from absl import flags

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_enum(
  "mode", "path", ["path", "memory", "evaluation"], "which benchmark."
)
flags.DEFINE_integer("num_train", None, "N (default: by mode).")
flags.DEFINE_integer("num_val", 5000, "validation rows.")
flags.DEFINE_integer("num_test", 10000, "test rows.")
flags.DEFINE_integer("num_features", None, "D (default: by mode).")
flags.DEFINE_integer("num_classes", 1000, "C.")
flags.DEFINE_float("separation", 0.5, "class centres' scale (noise 1).")
flags.DEFINE_float("label_noise", 0.2, "fraction of labels drawn at random.")
flags.DEFINE_enum(
  "storage",
  None,
  ["float32", "float16", "bfloat16"],
  "feature dtype (default: float16 for memory, else float32).",
)
flags.DEFINE_integer("num_c", 16, "values on the C grid.")
flags.DEFINE_float("c_min", 1e-3, "smallest C.")
flags.DEFINE_float("c_max", 10.0, "largest C.")
flags.DEFINE_integer("max_iter", 500, "linear_jax L-BFGS iterations per λ.")
flags.DEFINE_float("tol", 1e-6, "linear_jax gradient tolerance.")
flags.DEFINE_float("ftol", 1e-7, "linear_jax relative decrease tolerance.")
flags.DEFINE_integer("rank", 256, "preconditioner rank.")
flags.DEFINE_bool("sklearn", True, "run the scikit-learn loop (path mode).")
flags.DEFINE_bool("ours", True, "run linear_jax (path mode).")
flags.DEFINE_string(
  "sklearn_from",
  None,
  "take scikit-learn's rows from this earlier JSON of the same command "
  "(checked: data digest, C grid, max_iter, tol) instead of fitting again.",
)
flags.DEFINE_integer("sklearn_max_iter", 1000, "scikit-learn max_iter.")
flags.DEFINE_float("sklearn_tol", 1e-6, "scikit-learn tol.")
flags.DEFINE_integer("iterations", 3, "L-BFGS iterations (memory mode).")
flags.DEFINE_integer("repeats", 20, "timed evaluations (evaluation mode).")
flags.DEFINE_string("out", "benchmarks/results", "folder of the JSON results.")

SHAPES = {
  "path": (20000, 512),
  "memory": (1281167, 2048),
  "evaluation": (20000, 512),
}


def synthetic_features(
  num_rows: int,
  num_features: int,
  num_classes: int,
  *,
  split: int,
  separation: float,
  label_noise: float,
  mix: bool,
  dtype,
  seed: int = 0,
  block: int = 16384,
):
  """Features of a frozen network's shape: nonnegative, correlated, C classes.

  z = a·m_y + ε (class centres m_c and noise ε standard normal in D
  dimensions), x = max(0, zM + ½) with M = Q diag(10^{−1.5 t}), t ∈ [0, 1],
  Q a random rotation (``mix``; else M = I), and a fraction ``label_noise``
  of the labels replaced by uniform draws. Generated ``block`` rows at a time
  into a 64-byte aligned ``dtype`` array: the only float32 temporary is one
  block. The centres and M depend on ``seed``; rows and labels on
  ``(seed, split)``.

  Returns:
    ``(x [N, D] dtype, y [N] int32)``.
  """
  from linear_jax import shards  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  centres = rng.standard_normal((num_classes, num_features), np.float32)
  mixing = None
  if mix:
    q, _ = np.linalg.qr(rng.standard_normal((num_features, num_features)))
    mixing = (q * np.logspace(0, -1.5, num_features)).astype(np.float32)
  rows = np.random.default_rng([seed, split])
  y = rows.integers(0, num_classes, num_rows).astype(np.int32)
  x = shards.aligned_empty((num_rows, num_features), dtype)
  for a in range(0, num_rows, block):
    b = min(a + block, num_rows)
    z = separation * centres[y[a:b]]
    z += rows.standard_normal((b - a, num_features), np.float32)
    if mixing is not None:
      z = z @ mixing
    z += 0.5
    x[a:b] = np.maximum(z, 0)
  flip = rows.random(num_rows) < label_noise
  y = np.where(flip, rows.integers(0, num_classes, num_rows), y)
  return x, y.astype(np.int32)


def softmax_objective(w, b, lam, x, y, block: int = 8192) -> float:
  """L = mean CE + λ ΣW² in float64, over row blocks."""
  w = np.asarray(w, np.float64)
  b = np.asarray(b, np.float64)
  total = 0.0
  for a in range(0, len(y), block):
    s = x[a : a + block].astype(np.float64) @ w + b
    s -= s.max(axis=1, keepdims=True)
    lse = np.log(np.exp(s).sum(axis=1))
    total += float(np.sum(lse - s[np.arange(len(s)), y[a : a + block]]))
  return total / len(y) + lam * float(np.sum(w * w))


def digest(*arrays) -> str:
  """CRC-32 of the arrays' bytes (the same arrays in every run)."""
  crc = 0
  for a in arrays:
    crc = zlib.crc32(np.ascontiguousarray(a).view(np.uint8), crc)
  return f"{crc:08x}"


def flag_features(num_rows, num_features, num_classes, split, dtype, *, mix):
  """``synthetic_features`` with the flags' separation and label noise."""
  return synthetic_features(
    num_rows,
    num_features,
    num_classes,
    split=split,
    dtype=dtype,
    separation=FLAGS.separation,
    label_noise=FLAGS.label_noise,
    mix=mix,
  )


def storage_dtype(name: str):
  """A numpy dtype for float32, float16 or bfloat16 (ml_dtypes)."""
  if name == "bfloat16":
    import ml_dtypes  # pylint: disable=g-import-not-at-top

    return ml_dtypes.bfloat16
  return np.dtype(name)


def run_path(n, d, c, dtype, header, log=print) -> dict:
  """The C = 1,000 path: scikit-learn's loop, then linear_jax's path."""
  import jax  # pylint: disable=g-import-not-at-top

  from benchmarks import timing  # pylint: disable=g-import-not-at-top
  from linear_jax import path  # pylint: disable=g-import-not-at-top

  x, y = flag_features(n, d, c, 0, dtype, mix=True)
  xv, yv = flag_features(FLAGS.num_val, d, c, 1, dtype, mix=True)
  xt, yt = flag_features(FLAGS.num_test, d, c, 2, dtype, mix=True)
  cs = np.logspace(np.log10(FLAGS.c_min), np.log10(FLAGS.c_max), FLAGS.num_c)
  lams = path.reg_strength_from_C(cs, n, c)
  summary = {
    **header,
    "num_train": n,
    "num_features": d,
    "num_classes": c,
    "num_val": len(yv),
    "num_test": len(yt),
    "storage": np.dtype(dtype).name,
    "data_digest": digest(x, y, xv, yv, xt, yt),
    "C": cs.tolist(),
    "reg_strengths": lams.tolist(),
    "sklearn_max_iter": FLAGS.sklearn_max_iter,
    "sklearn_tol": FLAGS.sklearn_tol,
  }
  rows = [
    {"C": float(cv), "lambda": float(lv)}
    for cv, lv in zip(cs, lams, strict=True)
  ]
  log(
    f"N={n} D={d} C={c} storage={summary['storage']} digest={summary['data_digest']}"
  )
  flop_rate = timing.matmul_rate()
  summary["matmul_gflops"] = flop_rate / 1e9
  log(f"matmul ceiling {flop_rate / 1e9:.1f} GFLOP/s")

  if FLAGS.sklearn and FLAGS.sklearn_from:
    with open(FLAGS.sklearn_from, encoding="utf-8") as f:
      earlier = json.load(f)
    same = {
      "data_digest": summary["data_digest"],
      "C": summary["C"],
      "sklearn_max_iter": FLAGS.sklearn_max_iter,
      "sklearn_tol": FLAGS.sklearn_tol,
    }
    for key, value in same.items():
      given = earlier.get(key)
      if given is None and f"--{key}" not in earlier["command"]:
        given = FLAGS[key].default  # that run used the flag's default
      if given != value:
        raise SystemExit(f"{FLAGS.sklearn_from}: {key} differs from this run")
    for row, old in zip(rows, earlier["rows"], strict=True):
      row.update({k: v for k, v in old.items() if k.startswith("sklearn_")})
    for key in ("sklearn_seconds", "sklearn_best", "date", "command"):
      summary[f"sklearn_run_{key}" if key in ("date", "command") else key] = (
        earlier[key]
      )
    summary["sklearn_matmul_gflops"] = earlier["matmul_gflops"]
    log(
      f"scikit-learn rows from {FLAGS.sklearn_from} "
      f"({earlier['date']}): {summary['sklearn_seconds']:.1f} s"
    )
  elif FLAGS.sklearn:
    from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top

    x32 = np.asarray(x, np.float32)
    start = time.perf_counter()
    for row, cv in zip(rows, cs, strict=True):
      t0 = time.perf_counter()
      m = LogisticRegression(
        C=cv,
        solver="lbfgs",
        max_iter=FLAGS.sklearn_max_iter,
        tol=FLAGS.sklearn_tol,
      ).fit(x32, y)
      row["sklearn_seconds"] = time.perf_counter() - t0
      row["sklearn_iterations"] = int(np.max(m.n_iter_))
      row["sklearn_objective"] = softmax_objective(
        m.coef_.T, m.intercept_, row["lambda"], x32, y
      )
      row["sklearn_val_accuracy"] = float(m.score(xv, yv))
      row["sklearn_test_accuracy"] = float(m.score(xt, yt))
      log(
        f"  scikit-learn C={cv:.3g}: {row['sklearn_seconds']:.1f} s, "
        f"{row['sklearn_iterations']} iterations, L={row['sklearn_objective']:.7f}, "
        f"val {row['sklearn_val_accuracy']:.4f}"
      )
    summary["sklearn_seconds"] = time.perf_counter() - start
    summary["sklearn_best"] = path.select(
      lams, [r["sklearn_val_accuracy"] for r in rows]
    )
    log(f"scikit-learn loop: {summary['sklearn_seconds']:.1f} s")

  if FLAGS.ours:

    def progress(k, row):
      log(
        f"  linear_jax λ={row['reg_strength']:.3g}: {row['seconds']:.2f} s, "
        f"{row['iterations']} iterations, L={row['objective']:.7f}, "
        f"val {row['val_accuracy']:.4f}"
      )

    start = time.perf_counter()
    result = path.lambda_path(
      x,
      y,
      xv,
      yv,
      xt,
      yt,
      reg_strengths=lams,
      num_classes=c,
      max_iter=FLAGS.max_iter,
      tol=FLAGS.tol,
      ftol=FLAGS.ftol,
      rank=FLAGS.rank,
      callback=progress,
    )
    summary["ours_seconds"] = time.perf_counter() - start
    summary["ours_best"] = result.best
    evals = int(np.sum(result.evaluations))
    solve_seconds = float(np.sum(result.seconds))
    summary["ours_evaluations"] = evals
    summary["ours_seconds_per_evaluation"] = solve_seconds / evals
    summary["ours_fraction_of_matmul_ceiling"] = (
      4.0 * n * d * c * evals / solve_seconds / flop_rate
    )
    log(f"linear_jax path: {summary['ours_seconds']:.1f} s")
    for k, row in enumerate(rows):
      row["ours_objective"] = softmax_objective(
        result.params["W"][k], result.params["b"][k], row["lambda"], x, y
      )
      row["ours_iterations"] = int(result.iterations[k])
      row["ours_evaluations"] = int(result.evaluations[k])
      row["ours_seconds"] = float(result.seconds[k])
      row["ours_val_accuracy"] = float(result.val_accuracy[k])
      row["ours_test_accuracy"] = float(result.test_accuracy[k])
  if FLAGS.sklearn and FLAGS.ours:
    for row in rows:
      row["relative_objective_gap"] = (
        row["ours_objective"] - row["sklearn_objective"]
      ) / row["sklearn_objective"]
    summary["speedup"] = summary["sklearn_seconds"] / summary["ours_seconds"]
    summary["max_abs_relative_objective_gap"] = max(
      abs(r["relative_objective_gap"]) for r in rows
    )
    summary["ours_best_test_accuracy"] = rows[summary["ours_best"]][
      "ours_test_accuracy"
    ]
    summary["sklearn_best_test_accuracy"] = rows[summary["sklearn_best"]][
      "sklearn_test_accuracy"
    ]
  summary["rows"] = rows
  del jax
  return summary


def run_memory(n, d, c, dtype, header, log=print) -> dict:
  """The ImageNet shape: generate float16 rows in place, a few iterations."""
  from linear_jax import path  # pylint: disable=g-import-not-at-top

  t0 = time.perf_counter()
  x, y = flag_features(n, d, c, 0, dtype, mix=False)
  xv, yv = flag_features(FLAGS.num_val, d, c, 1, dtype, mix=False)
  generate = time.perf_counter() - t0
  log(f"generated {x.nbytes / 1e9:.2f} GB of {x.dtype} in {generate:.1f} s")
  lam = path.reg_strength_from_C([1.0], n, c)
  times = []

  def progress(k, row):
    times.append(row)

  start = time.perf_counter()
  result = path.lambda_path(
    x,
    y,
    xv,
    yv,
    reg_strengths=lam,
    num_classes=c,
    max_iter=FLAGS.iterations,
    tol=0.0,
    ftol=0.0,
    rank=FLAGS.rank,
    callback=progress,
  )
  total = time.perf_counter() - start
  evals = int(result.evaluations[0])
  summary = {
    **header,
    "num_train": n,
    "num_features": d,
    "num_classes": c,
    "storage": np.dtype(dtype).name,
    "feature_bytes": int(x.nbytes),
    "generate_seconds": generate,
    "path_seconds": total,
    "solve_seconds": float(result.seconds[0]),
    "iterations": int(result.iterations[0]),
    "evaluations": evals,
    "seconds_per_evaluation": float(result.seconds[0]) / evals,
    "objective": float(result.objective[0]),
    "train_accuracy": float(result.train_accuracy[0]),
    "val_accuracy": float(result.val_accuracy[0]),
    "rss_budget_bytes": int(1.25 * x.nbytes + 2**30),
  }
  log(
    f"path of 1 λ, {summary['iterations']} iterations "
    f"({evals} evaluations): {total:.1f} s, "
    f"{summary['seconds_per_evaluation']:.1f} s per evaluation"
  )
  return summary


def run_evaluation(n, d, c, dtype, header, log=print) -> dict:
  """One evaluation of the path's objective and gradient, in steady state."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from benchmarks import timing  # pylint: disable=g-import-not-at-top
  from linear_jax import row_blocks  # pylint: disable=g-import-not-at-top

  x, y = flag_features(n, d, c, 0, dtype, mix=True)
  block = row_blocks.block_rows(n, d, c)  # as lambda_path picks on a CPU
  x, y = jax.device_put(x), jax.device_put(y)
  mu = jnp.mean(x.astype(jnp.float32), axis=0)
  w = 0.01 * jax.random.normal(jax.random.key(0), (d, c), jnp.float32)
  b = jnp.zeros((c,), jnp.float32)
  # Every sum L-BFGS keeps of a pass (its aux: counts and curvature sums
  # too), with the rows as arguments, as the path's program takes them.
  evaluate = jax.jit(
    lambda w, b, x, y, mu: row_blocks.pass_sums(
      w, b, x, y, mu, loss="softmax", block_rows=block
    )
  )
  args = (w, b, x, y, mu)
  jax.block_until_ready(evaluate(*args))  # compiles
  before = timing.matmul_rate()
  seconds = timing.median_seconds(evaluate, *args, repeats=FLAGS.repeats)
  after = timing.matmul_rate()
  flops = 4 * n * d * c
  summary = {
    **header,
    "num_train": n,
    "num_features": d,
    "num_classes": c,
    "storage": np.dtype(dtype).name,
    "block_rows": block,
    "seconds_per_evaluation": seconds,
    "evaluation_gflops": flops / seconds / 1e9,
    "matmul_gflops_before": before / 1e9,
    "matmul_gflops_after": after / 1e9,
    "fraction_of_ceiling": flops / seconds / max(before, after),
  }
  log(
    f"N={n} D={d} C={c} block={block}: {seconds * 1e3:.1f} ms per "
    f"evaluation, {flops / seconds / 1e9:.1f} GFLOP/s; matmul ceiling "
    f"{before / 1e9:.1f} / {after / 1e9:.1f} GFLOP/s (before / after): "
    f"{summary['fraction_of_ceiling']:.0%} of the higher"
  )
  return summary


def main(argv):
  """Runs the chosen mode and writes its JSON."""
  del argv
  from benchmarks import timing  # pylint: disable=g-import-not-at-top
  from linear_jax import io as io_lib  # pylint: disable=g-import-not-at-top

  n0, d0 = SHAPES[FLAGS.mode]
  n = FLAGS.num_train or n0
  d = FLAGS.num_features or d0
  c = FLAGS.num_classes
  storage = FLAGS.storage or (
    "float16" if FLAGS.mode == "memory" else "float32"
  )
  dtype = storage_dtype(storage)
  header = timing.header(
    " ".join(["python -m benchmarks.probe"] + sys.argv[1:])
  )
  run = {"path": run_path, "memory": run_memory, "evaluation": run_evaluation}[
    FLAGS.mode
  ]
  summary = run(n, d, c, dtype, header, log=lambda s: print(s, flush=True))
  os.makedirs(FLAGS.out, exist_ok=True)
  out = os.path.join(
    FLAGS.out, f"probe_{FLAGS.mode}_{n}x{d}x{c}_{storage}.json"
  )
  io_lib.write_json(out, summary)
  print({k: v for k, v in summary.items() if k != "rows"})
  print("wrote", out)


if __name__ == "__main__":
  cli.start(main)
