import numpy as np, jax, jax.numpy as jnp, time
from linear_jax import benchmarking
import cpu_epoch  # run from this folder, with PYTHONPATH=<repo root>
N, D, C, B = 50000, 3072, 10, 256
S = N // B
rng = np.random.default_rng(0)
x = jnp.asarray(rng.normal(size=(N, D)).astype(np.float32)); y = jnp.asarray(rng.integers(0, C, N).astype(np.int32))
wt = jnp.zeros((C, D)); b = jnp.zeros(C)
lrs = jnp.full((S,), 1e-7, jnp.float32)
f = jax.jit(lambda batches, th: cpu_epoch._kernel(wt, b, wt, b, x, y, batches, lrs, jnp.float32(0.9), jnp.float32(0.0), th), static_argnums=1)
cpu_epoch.register()
rand = jnp.asarray(rng.permutation(N)[:S*B].reshape(S, B).astype(np.int32))
same = jnp.asarray(np.tile(np.arange(B, dtype=np.int32), (S, 1)))
seq = jnp.asarray(np.arange(S*B, dtype=np.int32).reshape(S, B))
for th in (1, 2):
  for name, bt in (("random rows", rand), ("same 256 rows", same), ("sequential", seq)):
    print(th, name, round(benchmarking.median_seconds(lambda: f(bt, th), repeats=5)*1e3, 1), "ms")
