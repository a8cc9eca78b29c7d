"""Seeded carving of one split out of another (validation from train).

``carve(n, size, seed)`` permutes ``range(n)`` with
``np.random.default_rng(seed).permutation(n)``: the first ``size`` indices
are carved out, the rest are kept in that permuted order. The same
``(n, size, seed)`` always gives the same indices.
"""

from __future__ import annotations

import numbers

import numpy as np

from linear_jax.checks import LinearJaxError

# Defaults never take more than this fraction of the training set.
MAX_DEFAULT_FRACTION = 0.2


def count(size: int | float, n: int) -> int:
  """Examples meant by ``size``: an int as is, a fraction in (0, 1) of ``n``."""
  if isinstance(size, bool) or not isinstance(size, numbers.Real):
    raise LinearJaxError(
      f"validation_size must be an int or a fraction in (0, 1), got {size!r}"
    )
  if isinstance(size, numbers.Integral):
    return int(size)
  if not 0 < size < 1:
    raise LinearJaxError(
      f"a fractional validation_size must lie in (0, 1), got {size}; pass "
      "an int for a number of examples"
    )
  return int(round(size * n))


def validation_count(
  validation_size: int | float | None, n_train: int, default: int | float
) -> int:
  """How many of ``n_train`` examples go to validation.

  None means ``default``, capped at 20 % of ``n_train`` so that tiny (e.g.
  mocked) datasets still split. An explicit size must leave at least one
  training example.
  """
  if validation_size is None:
    return min(count(default, n_train), int(MAX_DEFAULT_FRACTION * n_train))
  size = count(validation_size, n_train)
  if not 0 <= size < n_train:
    raise LinearJaxError(
      f"validation_size {validation_size!r} must leave at least one of the "
      f"{n_train} training examples; pass a number in [0, {n_train - 1}]"
    )
  return size


def carve(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``(kept [n - size], carved [size])`` indices into ``range(n)``, seeded."""
  perm = np.random.default_rng(seed).permutation(n)
  return perm[size:], perm[:size]
