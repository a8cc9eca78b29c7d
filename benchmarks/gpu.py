r"""GPU benchmark for the device tool: one call, under 5 minutes, one table.

Runs on a machine with JAX + CUDA, PyTorch and optax but no TensorFlow/tfds:
synthetic data of CIFAR-10's shape (50,000 × 3,072, 10 classes) for speed,
and the CIFAR-10 JPEG archive (when given via LINEAR_JAX_SHARED_DATA) for
time to accuracy. Precision: XLA's default float32 matmul precision, which is
TF32 on H100/H200; PyTorch likewise with ``allow_tf32``.

  PYTHONPATH=. python3 experiments/gpu_benchmark.py --out=$OUT
  ... --only=core      headline rows again (~1 minute)
  ... --only=pallas    the one-kernel Pallas epoch
  ... --only=blocked   the blocked sweep (k = 4, 8, 16) against vmap, their
                       agreement, and time to 40 % at B = 1,024 (~2 minutes)
  (small CPU smoke run:  BENCH_N=2048 python experiments/gpu_benchmark.py;
   BENCH_CONFIGS and BENCH_BLOCKS=4,8 set the sweep's K and block sizes)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from linear_jax import benchmarking
from linear_jax import shuffle
from linear_jax import training
from linear_jax.sweep import engine

N = int(os.environ.get("BENCH_N", 50_000))
D, C, B = 3072, 10, 256
CONFIGS = int(os.environ.get("BENCH_CONFIGS", 1024))
BLOCKS = [int(k) for k in os.environ.get("BENCH_BLOCKS", "4,8,16").split(",")]
ROWS = []


def row(what, seconds, note=""):
  ROWS.append({"what": what, "ms": seconds * 1e3, "note": note})
  print(f"  {what:<58} {seconds * 1e3:10.3f} ms  {note}", flush=True)


def synthetic(dtype):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, size=(N, D), dtype=np.uint8)
  y = rng.integers(0, C, size=N).astype(np.int32)
  mean = x.mean(0).astype(np.float32)
  if dtype == "uint8":
    return training.DeviceData.put(x, y, x[:1000], y[:1000], shift=mean)
  xf = (x - mean).astype(np.float32)
  if dtype == "bfloat16":
    xb = jnp.asarray(xf, jnp.bfloat16)
    return training.DeviceData(xb, jnp.asarray(y), xb[:1000], jnp.asarray(y[:1000]),
                               jnp.zeros(D, jnp.float32), None)
  return training.DeviceData.put(xf, y, xf[:1000], y[:1000])


def time_epoch(data, *, batch=B, unroll=1, loss="softmax", optimizer="sgd"):
  config = training.TrainConfig(loss=loss, optimizer=optimizer, batch_size=batch,
                                epochs=10, unroll=unroll)
  hp = training.make_hparams(learning_rate=1e-7)
  state = training.init_state(config, hp, 0, D, C, N)
  epoch = training.make_epoch_fn(config).lower(state, hp, data).compile()
  return benchmarking.median_seconds(epoch, state, hp, data, repeats=10)


def time_sweep(data, k, optimizer="sgd", algorithm="vmap", block_steps=8):
  config = training.TrainConfig(loss="softmax", optimizer=optimizer, batch_size=B,
                                epochs=10)
  lrs = np.logspace(-8, -6, k).astype(np.float32)
  hp = jax.vmap(lambda lr: training.make_hparams(learning_rate=1.0)._replace(
      learning_rate=lr))(jnp.asarray(lrs))
  one = training.init_state(config, training.make_hparams(), 0, D, C, N)
  state = one._replace(
      params=jax.tree.map(lambda a: jnp.broadcast_to(a, (k,) + a.shape), one.params),
      opt_state=jax.tree.map(lambda a: jnp.broadcast_to(a, (k,) + a.shape),
                             one.opt_state))
  fn = jax.jit(engine.epoch_function(config, algorithm, block_steps)).lower(
      state, hp, data).compile()
  return benchmarking.median_seconds(fn, state, hp, data, repeats=5), fn, state, hp


def blocked_agreement(data, k=64, block_steps=8):
  """Max |W_blocked − W_vmap| / max |W_vmap| and the largest validation-
  accuracy difference after one epoch, lr 1e-9 … 1e-6, λ 1e-3: the stable
  range for these raw ±128 pixels (larger rates blow up, and two blown-up
  float32 trajectories need not agree). On the CPU: 3–4e-7."""
  config = training.TrainConfig(loss="softmax", optimizer="sgd", batch_size=B,
                                epochs=1)
  lrs = jnp.asarray(np.logspace(-9, -6, k), jnp.float32)
  hp = jax.vmap(lambda lr: training.make_hparams(reg_strength=1e-3)._replace(
      learning_rate=lr))(lrs)
  state = engine.vmapped_init(config, D, C, N)(hp)
  outs = {a: jax.jit(engine.epoch_function(config, a, block_steps))(state, hp, data)
          for a in ("vmap", "blocked")}
  w_v, w_b = outs["vmap"][0].params["W"], outs["blocked"][0].params["W"]
  rel = float(jnp.max(jnp.abs(w_b - w_v)) / jnp.max(jnp.abs(w_v)))
  acc = float(jnp.max(jnp.abs(outs["vmap"][1]["val_accuracy"] -
                              outs["blocked"][1]["val_accuracy"])))
  return rel, acc


def cifar10_on_device():
  """(dataset, train/val ``DeviceData``, test x, test y) of the standardized
  CIFAR-10 JPEG set, or None (said) without LINEAR_JAX_SHARED_DATA."""
  if not os.environ.get("LINEAR_JAX_SHARED_DATA"):
    print("  (no LINEAR_JAX_SHARED_DATA: time to accuracy skipped)")
    return None
  from linear_jax import data as data_lib
  ds = data_lib.load_dataset("cifar10_jpeg", standardize=True)
  data = training.DeviceData.put(ds.x_train, ds.y_train, ds.x_val, ds.y_val)
  return ds, data, jnp.asarray(ds.x_test), jnp.asarray(ds.y_test)


def time_to_40_large_batch():
  """Softmax, nesterov, cosine, B = 1,024, lr 0.02, 1 epoch: the compiled
  epoch's time (the 1,000-row validation pass inside; no host sync per
  step) and its test accuracy. On the CPU this recipe gave 40.09–40.50 %
  over seeds 0–3 (48 steps instead of 191 at B = 256)."""
  loaded = cifar10_on_device()
  if loaded is None:
    return
  ds, data, xt, yt = loaded
  n = len(ds.y_train)
  for batch, lr, opt, unroll in ((1024, 0.02, "nesterov", 1),
                                 (1024, 0.02, "nesterov", 8),
                                 (512, 0.01, "momentum", 8)):
    config = training.TrainConfig(loss="softmax", optimizer=opt,
                                  schedule="cosine", batch_size=batch,
                                  epochs=1, unroll=unroll)
    hp = training.make_hparams(learning_rate=lr, reg_strength=1e-3)
    accs, times = [], []
    for seed in range(3):
      state = training.init_state(config, hp, seed, ds.x_train.shape[1], 10, n)
      epoch = training.make_epoch_fn(config).lower(state, hp, data).compile()
      times.append(benchmarking.median_seconds(epoch, state, hp, data,
                                               repeats=10))
      trained, _ = epoch(state, hp, data)
      accs.append(float(training.accuracy(trained.params, xt, yt)))
    row(f"CIFAR-10 softmax 1 epoch {opt} B={batch} lr={lr:g} unroll={unroll}: "
        f"test acc {min(accs):.4f}–{max(accs):.4f} (seeds 0–2)",
        float(np.median(times)), "compiled epoch, median over seeds")


def main_blocked(out):
  """``--only=blocked``: the blocked sweep and the large-batch time to 40 %."""
  dev = jax.devices()[0]
  print(f"device: {dev.device_kind} ({dev.platform}), jax {jax.__version__}, N={N}")
  f32 = synthetic("float32")
  t, *_ = time_sweep(f32, CONFIGS)
  row(f"sweep {CONFIGS} configs x 1 epoch f32 sgd, vmap (baseline)", t)
  for k in BLOCKS:
    t, *_ = time_sweep(f32, CONFIGS, algorithm="blocked", block_steps=k)
    row(f"sweep {CONFIGS} configs x 1 epoch f32 sgd, blocked k={k}", t)
  rel, acc = blocked_agreement(f32)
  row("blocked k=8 vs vmap, 64 configs, 1 epoch (agreement)", 0.0,
      f"max |ΔW|/max|W| {rel:.2e}, max Δ val acc {acc:.4f}")
  del f32
  time_to_40_large_batch()
  print_table(out, dev)


def torch_epoch(loss_name="ce", steps_per_call=None):
  import torch
  torch.backends.cuda.matmul.allow_tf32 = True
  dev = "cuda" if torch.cuda.is_available() else "cpu"
  g = torch.Generator(device="cpu").manual_seed(0)
  x = torch.randint(0, 256, (N, D), generator=g, dtype=torch.uint8)
  x = (x.float() - x.float().mean(0)).to(dev)
  y = torch.randint(0, C, (N,), generator=g).to(dev)
  model = torch.nn.Linear(D, C).to(dev)
  opt = torch.optim.SGD(model.parameters(), lr=1e-7, momentum=0.9)
  crit = torch.nn.CrossEntropyLoss() if loss_name == "ce" else torch.nn.MultiMarginLoss()

  def epoch():
    perm = torch.randperm(N, device=dev)
    for i in range(N // B):
      idx = perm[i * B:(i + 1) * B]
      opt.zero_grad(set_to_none=True)
      crit(model(x[idx]), y[idx]).backward()
      opt.step()
    if dev == "cuda":
      torch.cuda.synchronize()

  epoch()
  times = []
  for _ in range(3):
    t = time.perf_counter(); epoch(); times.append(time.perf_counter() - t)
  return float(np.median(times))


def part_epoch_variants():
  """The single-model epoch under the XLA flags this process was started with."""
  flags = os.environ.get("XLA_FLAGS", "(none)")
  f32 = synthetic("float32")
  for unroll in (1, 8):
    row(f"1 model epoch B=256 f32 unroll={unroll} XLA_FLAGS={flags[:30]}",
        time_epoch(f32, unroll=unroll))
  u8 = synthetic("uint8")
  row(f"1 model epoch B=256 uint8 unroll=8 XLA_FLAGS={flags[:30]}",
      time_epoch(u8, unroll=8))


def part_pallas():
  """The one-kernel epoch: checked against train_epoch, then timed beside it."""
  from linear_jax.kernels import pallas_epoch
  f32 = synthetic("float32")
  rng = np.random.default_rng(1)
  config = training.TrainConfig(loss="softmax", reg="l2", optimizer="momentum",
                                batch_size=B, epochs=1)
  hp = training.make_hparams(learning_rate=1e-7, reg_strength=1e-3)
  state = training.init_state(config, hp, 0, D, C, N)
  state = state._replace(params={
      "W": jnp.asarray(1e-3 * rng.normal(size=(D, C)), jnp.float32),
      "b": jnp.zeros(C, jnp.float32)})
  xla_epoch = training.make_epoch_fn(config)
  expected, _ = xla_epoch(state, hp, f32)
  row("XLA train_epoch softmax momentum B=256 (baseline, same card)",
      benchmarking.median_seconds(xla_epoch, state, hp, f32, repeats=10))
  kernel_hp = jnp.array([1e-7, 0.9, 1e-3], jnp.float32)

  def make(num_programs, cosine=False, groups=1):
    @jax.jit
    def epoch(params, key_data, x, y, kernel_hp):
      _, perm_key = jax.random.split(jax.random.wrap_key_data(key_data))
      steps = x.shape[0] // B
      batches = shuffle.permutation(perm_key, x.shape[0])[:steps * B]
      return pallas_epoch.softmax_momentum_epoch(
          params, batches.reshape(steps, B).astype(jnp.int32), x, y, kernel_hp,
          num_programs=num_programs, cosine=cosine, groups=groups)
    return epoch

  for programs, groups in ((96, 1), (96, 4), (96, 16), (48, 4)):
    epoch = make(programs, groups=groups)
    got = epoch(state.params, state.key, f32.x_train, f32.y_train, kernel_hp)
    step = expected.params["W"] - state.params["W"]
    err = float(jnp.linalg.norm(got["W"] - expected.params["W"]) /
                jnp.linalg.norm(step))
    t = benchmarking.median_seconds(epoch, state.params, state.key, f32.x_train,
                                    f32.y_train, kernel_hp, repeats=10)
    row(f"Pallas one-kernel epoch P={programs} G={groups} B=256 (TF32)", t,
        f"update rel. err vs XLA {err:.1e}")
  if not os.environ.get("LINEAR_JAX_SHARED_DATA"):
    return
  from linear_jax import data as data_lib
  ds = data_lib.load_dataset("cifar10_jpeg", standardize=True)
  x = jnp.asarray(ds.x_train); y = jnp.asarray(ds.y_train)
  zero = {"W": jnp.zeros((D, C), jnp.float32), "b": jnp.zeros(C, jnp.float32)}
  key = jax.random.key_data(jax.random.key(0))
  for lr in (3e-3,):
    epoch = make(96, cosine=True, groups=int(os.environ.get("BENCH_GROUPS", 4)))
    hp_k = jnp.array([lr, 0.9, 1e-3], jnp.float32)
    params = epoch(zero, key, x, y, hp_k)
    acc = float(training.accuracy(params, jnp.asarray(ds.x_test), jnp.asarray(ds.y_test)))
    t = benchmarking.median_seconds(epoch, zero, key, x, y, hp_k, repeats=10)
    row(f"CIFAR-10 softmax 1 epoch Pallas cosine lr={lr:g}: test acc {acc:.4f}", t)


def fused_sgd_sweep_epoch(w, b, batches, x, y, lrs):
  """An experiment, not library code: K softmax models as one wide matrix.

  W ``[D, K·C]``, plain SGD (λ = 0): W += xᵀ(−lr ⊙ dS), written so that XLA
  can fuse the addition into the gradient GEMM (β = 1) instead of writing
  and re-reading the 126 MB gradient.
  """
  k = lrs.shape[0]

  def step(carry, idx):
    w, b = carry
    xb, yb = x[idx], y[idx]
    scores = (xb @ w + b).reshape(B, k, C)
    probs = jax.nn.softmax(scores, axis=-1)
    dscores = (probs - jax.nn.one_hot(yb, C)[:, None, :]) / B
    dscores = (-lrs[None, :, None] * dscores).reshape(B, k * C)
    return (w + xb.T @ dscores, b + dscores.sum(0)), None

  (w, b), _ = jax.lax.scan(step, (w, b), batches)
  return w, b


def part_fused_sweep():
  f32 = synthetic("float32")
  k = CONFIGS
  lrs = jnp.asarray(np.logspace(-8, -6, k), jnp.float32)
  batches = jax.random.permutation(jax.random.key(3), N)[:(N // B) * B]
  batches = batches.reshape(N // B, B)
  w = jnp.zeros((D, k * C), jnp.float32)
  b = jnp.zeros((k * C,), jnp.float32)
  fn = jax.jit(fused_sgd_sweep_epoch)
  t = benchmarking.median_seconds(fn, w, b, batches, f32.x_train, f32.y_train,
                                  lrs, repeats=5)
  # Same math through the library for 2 configurations (same permutation).
  w_new, _ = fn(w, b, batches, f32.x_train, f32.y_train, lrs)
  errs = []
  for i in (0, k - 1):
    def ref_step(carry, idx):
      wi, bi = carry
      xb, yb = f32.x_train[idx], f32.y_train[idx]
      g = jax.grad(lambda p: jnp.mean(jax.nn.logsumexp(xb @ p["W"] + p["b"], -1)
                   - jnp.take_along_axis(xb @ p["W"] + p["b"], yb[:, None], 1)[:, 0]))(
                       {"W": wi, "b": bi})
      return (wi - lrs[i] * g["W"], bi - lrs[i] * g["b"]), None
    (wr, _), _ = jax.lax.scan(ref_step, (jnp.zeros((D, C)), jnp.zeros(C)), batches)
    errs.append(float(jnp.linalg.norm(w_new[:, i * C:(i + 1) * C] - wr) /
                      jnp.linalg.norm(wr)))
  row(f"EXPERIMENT fused wide-matrix SGD sweep, {k} configs x 1 epoch", t,
      f"rel. err vs per-config autodiff {max(errs):.1e}")


def run_part(part, flags="", timeout=240):
  env = dict(os.environ, XLA_FLAGS=flags)
  try:
    proc = subprocess.run([sys.executable, __file__, f"--part={part}"], env=env,
                          capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    print(f"  part {part} timed out after {timeout} s (a deadlocked barrier?)")
    return
  lines = [l for l in proc.stdout.splitlines() if l.startswith("ROWS_JSON ")]
  if lines:
    for r in json.loads(lines[-1][10:]):
      row(r["what"], r["ms"] / 1e3, r["note"])
  else:
    print(f"  part {part} XLA_FLAGS={flags!r} failed: {proc.stderr[-1500:]}")


def print_table(out, dev):
  print("\n| what | ms | note |\n|---|---:|---|")
  for r in ROWS:
    print(f"| {r['what']} | {r['ms']:.3f} | {r['note']} |")
  if out:
    with open(os.path.join(out, "gpu_benchmark.json"), "w") as f:
      json.dump({"device": dev.device_kind, "rows": ROWS, "N": N}, f, indent=1)


def main():
  out = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--out=")), None)
  part = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--part=")), None)
  if part:
    {"epoch": part_epoch_variants, "pallas": part_pallas,
     "fused_sweep": part_fused_sweep}[part]()
    print("ROWS_JSON " + json.dumps(ROWS))
    return
  if "--only=core" in sys.argv:  # re-check of the headline rows, ~1 minute
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform}), jax {jax.__version__}, N={N}")
    f32 = synthetic("float32")
    row("1 model epoch B=256 f32 sgd unroll=8", time_epoch(f32, unroll=8))
    row("1 model epoch B=256 softmax momentum", time_epoch(f32, optimizer="momentum"))
    row("1 model epoch full batch f32", time_epoch(f32, batch=N))
    t, *_ = time_sweep(f32, CONFIGS)
    row(f"sweep {CONFIGS} configs x 1 epoch f32 sgd", t)
    t, *_ = time_sweep(f32, CONFIGS, optimizer="momentum")
    row(f"sweep {CONFIGS} configs x 1 epoch f32 momentum", t)
    del f32
    run_part("fused_sweep", timeout=180)
    print_table(out, dev)
    return
  if "--only=blocked" in sys.argv:  # ~2 minutes on an H200
    main_blocked(out)
    return
  if "--only=pallas" in sys.argv:
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform}), jax {jax.__version__}, N={N}")
    run_part("pallas", timeout=180)
    print_table(out, dev)
    return
  dev = jax.devices()[0]
  print(f"device: {dev.device_kind} ({dev.platform}), jax {jax.__version__}, N={N}")
  bw = benchmarking.copy_bandwidth(1 << 30 if dev.platform == "gpu" else 1 << 28)
  rate = benchmarking.matmul_rate(8192 if dev.platform == "gpu" else 1024)
  rate_hi = benchmarking.matmul_rate(8192 if dev.platform == "gpu" else 1024,
                                     precision="highest")
  print(f"copy bandwidth {bw / 1e9:.0f} GB/s (read+write); f32 matmul "
        f"{rate / 1e12:.1f} TFLOP/s default (TF32), {rate_hi / 1e12:.1f} highest")
  floor = benchmarking.epoch_floor(N, D, C, bytes_per_feature=4, bandwidth=bw,
                                   flop_rate=rate)
  floor_u8 = benchmarking.epoch_floor(N, D, C, bytes_per_feature=1, bandwidth=bw,
                                      flop_rate=rate)
  row("floor: 1 epoch f32 X read once / FLOPs", floor["floor_seconds"],
      f"read {floor['read_seconds']*1e3:.3f} ms, compute {floor['compute_seconds']*1e3:.3f} ms")
  row("floor: 1 epoch uint8 X", floor_u8["floor_seconds"])

  # Single-model epoch, variants of XLA flags in subprocesses.
  for flags in ("", "--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,"
                    "CUSTOM_CALL,WHILE,CONDITIONAL --xla_gpu_graph_min_graph_size=1"):
    run_part("epoch", flags)
  run_part("pallas", timeout=180)

  f32 = synthetic("float32")
  row("1 model epoch full batch f32", time_epoch(f32, batch=N))
  for loss in ("svm", "softmax"):
    cfg = dict(loss=loss)
    row(f"1 model epoch B=256 {loss} momentum", time_epoch(f32, optimizer="momentum", **cfg))

  # Sweep: K configurations x 1 epoch, sharing the data.
  k_small = 16
  t16, *_ = time_sweep(f32, k_small)
  row(f"sweep {k_small} configs x 1 epoch f32 sgd", t16)
  tk, fn, state, hp = time_sweep(f32, CONFIGS)
  floor_k = benchmarking.epoch_floor(N, D, C, bytes_per_feature=4, bandwidth=bw,
                                     flop_rate=rate, num_configs=CONFIGS)
  row(f"sweep {CONFIGS} configs x 1 epoch f32 sgd", tk,
      f"floor {floor_k['floor_seconds']*1e3:.2f} ms")
  bf = synthetic("bfloat16")
  tkb, fnb, _, _ = time_sweep(bf, CONFIGS)
  row(f"sweep {CONFIGS} configs x 1 epoch bf16 data sgd", tkb)
  tkm, *_ = time_sweep(f32, CONFIGS, optimizer="momentum")
  row(f"sweep {CONFIGS} configs x 1 epoch f32 momentum", tkm)

  try:
    row("torch nn.Linear+CrossEntropyLoss epoch B=256 (TF32)", torch_epoch("ce"))
    row("torch nn.Linear+MultiMarginLoss epoch B=256 (TF32)", torch_epoch("mm"))
  except Exception as e:  # torch missing or failing: say so, keep the table
    print(f"  torch peer skipped: {type(e).__name__}: {e}")

  time_to_accuracy()
  print_table(out, dev)


def time_to_accuracy():
  """Seconds of training to 40 % test accuracy on the CIFAR-10 JPEG set."""
  from linear_jax import fit as fit_lib
  loaded = cifar10_on_device()
  if loaded is None:
    return
  _, data, xt, yt = loaded
  for loss, lr, epochs in (("softmax", 3e-3, 1), ("svm", 1e-3, 1), ("softmax", 3e-3, 2)):
    config = training.TrainConfig(loss=loss, optimizer="momentum", batch_size=B,
                                  epochs=epochs, schedule="cosine", unroll=8)
    hp = training.make_hparams(learning_rate=lr, reg_strength=1e-3)
    best = []
    for _ in range(3):
      result = fit_lib.fit(config, hp, data, num_classes=10, log=False)
      best.append(result.train_seconds)
    acc = float(training.accuracy(result.params, xt, yt))
    row(f"CIFAR-10 {loss} {epochs} epoch(s) cosine: test acc {acc:.4f}",
        float(np.median(best)))


if __name__ == "__main__":
  main()
