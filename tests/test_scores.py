"""linear_jax.scores: top_class against jnp.argmax, and predict."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linear_jax import scores


@jax.jit
def top_class_and_argmax(s):
  """``scores.top_class`` and ``jnp.argmax`` over the last axis of ``s``."""
  return scores.top_class(s), jnp.argmax(s, axis=-1)


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (64, 1000), (2, 3, 5)])
def test_top_class_is_argmax_with_ties_and_nans(shape):
  rng = np.random.default_rng(0)
  # Few distinct values, so most rows hold ties for the maximum.
  s = rng.integers(-2, 3, size=shape).astype(np.float32)
  flat = s.reshape(-1, shape[-1])
  flat[::5, rng.integers(0, shape[-1])] = np.nan
  flat[1::7, :] = np.nan
  flat[2::11, :] = -np.inf
  got, want = map(np.asarray, top_class_and_argmax(jnp.asarray(s)))
  np.testing.assert_array_equal(got, want)
  assert got.dtype == np.int32


def test_top_class_under_jit_and_vmap_and_on_integers():
  rng = np.random.default_rng(2)
  s = rng.integers(-3, 4, size=(2, 7, 3)).astype(np.int32)
  got = jax.jit(jax.vmap(scores.top_class))(jnp.asarray(s))
  np.testing.assert_array_equal(got, np.argmax(s, axis=-1))
  f = s.astype(np.float32)
  got = jax.jit(jax.vmap(scores.top_class))(jnp.asarray(f))
  np.testing.assert_array_equal(got, np.argmax(f, axis=-1))


def test_top_class_first_of_equal_maxima():
  s = jnp.asarray([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0]])
  np.testing.assert_array_equal(scores.top_class(s), [1, 0])


def test_predict_is_top_class_of_linear_scores():
  rng = np.random.default_rng(1)
  params = {
    "W": jnp.asarray(rng.normal(size=(4, 6)), jnp.float32),
    "b": jnp.asarray(rng.normal(size=6), jnp.float32),
  }
  x = jnp.asarray(rng.normal(size=(9, 4)), jnp.float32)
  want = np.argmax(np.asarray(x) @ np.asarray(params["W"]) + params["b"], -1)
  np.testing.assert_array_equal(scores.predict(params, x), want)
