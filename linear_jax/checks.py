"""Cheap input checks at the public boundary, each failing with one clear line.

Contract: shape and dtype checks are static and always run, also under
``jit``/``vmap``. Value checks (label range, signs of λ and Δ, the range of
``label_smoothing``) run only on concrete arrays, i.e. when a public function
is called eagerly. Inside a jitted program they are skipped: out-of-range
labels then select a clamped class and give a meaningless (but finite) loss,
so check data once before compiling (``linear_jax.data`` does).
"""

from __future__ import annotations

import difflib

import jax
import jax.numpy as jnp
import numpy as np


class LinearJaxError(ValueError):
  """A bad input or option; the message is one line naming problem and fix."""


try:
  _Tracer = jax.core.Tracer
except AttributeError:  # newer JAX keeps it private
  from jax._src.core import Tracer as _Tracer


def is_concrete(value) -> bool:
  """True when ``value`` holds data (not a tracer inside jit/vmap/grad)."""
  return not isinstance(value, _Tracer)


def lookup(registry: dict, name: str, what: str):
  """``registry[name]``, or an error listing the valid names."""
  if isinstance(name, str) and name in registry:
    return registry[name]
  valid = ", ".join(sorted(registry))
  hint = difflib.get_close_matches(str(name), list(registry), n=1, cutoff=0.5)
  did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
  raise LinearJaxError(
      f"unknown {what} {name!r}{did_you_mean}; valid names: {valid}")


def check_scores_and_labels(scores, labels):
  """Checks ``scores [N, C]`` float and ``labels [N]`` int in [0, C)."""
  scores = jnp.asarray(scores)
  labels = jnp.asarray(labels)
  if scores.ndim != 2:
    raise LinearJaxError(
        f"scores must be [N, C], got shape {scores.shape}; reshape to 2-D")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise LinearJaxError(
        f"labels must be integers in [0, C), got dtype {labels.dtype}; "
        "pass class indices, e.g. y.astype(int)")
  if labels.shape != scores.shape[:1]:
    raise LinearJaxError(
        f"labels shape {labels.shape} does not match {scores.shape[0]} rows of "
        f"scores {scores.shape}; pass one label per example")
  check_label_range(labels, scores.shape[1])
  return scores, labels


def check_label_range(labels, num_classes: int):
  if is_concrete(labels) and labels.size:
    values = np.asarray(labels)  # np.min(jax_array) would trace under jit
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi >= num_classes:
      raise LinearJaxError(
          f"labels must lie in [0, {num_classes}), found values in "
          f"[{lo}, {hi}]; remap labels to 0..C-1 or widen W to more classes")


def check_nonnegative(value, name: str):
  if value is not None and is_concrete(value):
    v = np.asarray(value)
    if np.any(~np.isfinite(v)) or np.any(v < 0):
      raise LinearJaxError(f"{name} must be a finite number >= 0, got {value}")


def check_unit_interval(value, name: str):
  if value is not None and is_concrete(value):
    v = np.asarray(value)
    if np.any(~np.isfinite(v)) or np.any(v < 0) or np.any(v > 1):
      raise LinearJaxError(f"{name} must lie in [0, 1], got {value}")
