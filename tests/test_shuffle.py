"""The per-epoch shuffle is a permutation, keyed, and far from the identity."""

import jax
import numpy as np
import pytest
from conftest import slow_except

from linear_jax import shuffle

# The permutation jitted: one program per length n (static).
jit_permutation = jax.jit(shuffle.permutation, static_argnums=1)


@pytest.mark.parametrize(
  "n", slow_except([1, 2, 3, 7, 100, 1000, 49000, 65536, 65537], 7)
)
def test_is_a_permutation(n):
  p = np.asarray(jit_permutation(jax.random.key(n), n))
  assert p.dtype == np.int32
  np.testing.assert_array_equal(np.sort(p), np.arange(n))


@pytest.mark.slow
def test_keyed_deterministic_and_mixing():
  n = 10_000
  a = np.asarray(shuffle.permutation(jax.random.key(0), n))
  np.testing.assert_array_equal(a, shuffle.permutation(jax.random.key(0), n))
  b = np.asarray(shuffle.permutation(jax.random.key(1), n))
  assert (a != b).mean() > 0.99
  assert abs(np.corrcoef(a, np.arange(n))[0, 1]) < 0.05
  assert abs(np.corrcoef(a, b)[0, 1]) < 0.05
  # Where element 0 lands, over 200 keys: roughly uniform on [0, 1000).
  perms = jax.jit(jax.vmap(lambda k: shuffle.permutation(k, 1000)))(
    jax.random.split(jax.random.key(2), 200)
  )
  landing = np.argmax(np.asarray(perms) == 0, axis=1)
  assert 400 < np.mean(landing) < 600 and 230 < np.std(landing) < 350
