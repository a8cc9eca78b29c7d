import numpy as np, jax, jax.numpy as jnp
from linear_jax import training, benchmarking
import cpu_epoch  # run from this folder, with PYTHONPATH=<repo root>
N, D, C = 50000, 3072, 10
rng = np.random.default_rng(0)
x = rng.normal(size=(N, D)).astype(np.float32); y = rng.integers(0, C, N)
data = training.DeviceData.put(x, y, x[:1000], y[:1000])
cfg = training.TrainConfig(loss="softmax", optimizer="momentum", batch_size=256, epochs=10)
hp = training.make_hparams(learning_rate=1e-7)
st = training.init_state(cfg, hp, 0, D, C, N)
for name, f in (("xla", training.make_epoch_fn(cfg)), ("fused", cpu_epoch.fused_epoch(cfg)), ("fused 1 thread", cpu_epoch.fused_epoch(cfg, threads=1)), ("xla", training.make_epoch_fn(cfg)), ("fused", cpu_epoch.fused_epoch(cfg))):
  print(name, benchmarking.median_seconds(f, st, hp, data, repeats=5))
