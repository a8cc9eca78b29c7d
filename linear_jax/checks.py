"""Cheap input checks at the public boundary, each failing with one clear line.

Contract: shape and dtype checks are static and always run, also under
``jit``/``vmap``. Value checks (label range, signs of λ and Δ, the range of
``label_smoothing``) run only on concrete arrays, i.e. when a public function
is called eagerly. Inside a jitted program they are skipped: out-of-range
labels then select a clamped class and give a meaningless (but finite) loss,
so check data once before compiling (``linear_jax.data`` does).
"""

from __future__ import annotations

import dataclasses
import difflib

import jax
import jax.numpy as jnp
import numpy as np


class LinearJaxError(ValueError):
  """A bad input or option; the message is one line naming problem and fix."""


#: The largest finite float32: training computes in float32, so data and
#: knobs beyond it become inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


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
    f"unknown {what} {name!r}{did_you_mean}; valid names: {valid}"
  )


def check_scores_and_labels(scores, labels) -> tuple[jax.Array, jax.Array]:
  """Checks ``scores [N, C]`` float and ``labels [N]`` int in [0, C)."""
  scores = jnp.asarray(scores)
  labels = jnp.asarray(labels)
  if scores.ndim != 2:
    raise LinearJaxError(
      f"scores must be [N, C], got shape {scores.shape}; reshape to 2-D"
    )
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise LinearJaxError(
      f"labels must be integers in [0, C), got dtype {labels.dtype}; "
      "pass class indices, e.g. y.astype(int)"
    )
  if labels.shape != scores.shape[:1]:
    raise LinearJaxError(
      f"labels shape {labels.shape} does not match {scores.shape[0]} rows of "
      f"scores {scores.shape}; pass one label per example"
    )
  check_label_range(labels, scores.shape[1])
  return scores, labels


def check_label_range(labels, num_classes: int):
  """Raises ``LinearJaxError`` unless int ``labels`` lie in [0, C).

  Skipped under ``jit`` (traced labels have no values to check).

  Args:
    labels: ``[N]`` integer labels.
    num_classes: C.
  """
  if is_concrete(labels) and labels.size:
    values = np.asarray(labels)  # np.min(jax_array) would trace under jit
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi >= num_classes:
      raise LinearJaxError(
        f"labels must lie in [0, {num_classes}), found values in "
        f"[{lo}, {hi}]; remap labels to 0..C-1 or widen W to more classes"
      )


def check_integer_labels(**labels) -> None:
  """Refuses labels that are not whole numbers, naming the first.

  A float label such as 0.5 would otherwise be truncated to a class without
  a word; whole-number floats (1.0) pass, as do ints and bools. Arguments
  are ``name=labels`` pairs (None is skipped); skipped under ``jit``.
  """
  for name, y in labels.items():
    if y is None or not is_concrete(y):
      continue
    values = np.asarray(y)
    if values.dtype.kind in "biu":
      continue
    if values.dtype.kind == "f":
      bad = ~np.isfinite(values) | (values != np.round(values))
      if not bad.any():
        continue
      example = values[bad].flat[0].item()
    else:
      example = values.flat[0].item() if values.size else None
    raise LinearJaxError(
      f"{name} must hold integer class labels in [0, C), found {example!r} "
      f"({values.dtype}); pass class indices, e.g. "
      "np.unique(y, return_inverse=True)[1]"
    )


@dataclasses.dataclass(frozen=True)
class Range:
  """A numeric rule, low ≤ v (or low < v) and v ≤ high, finite.

  One object states a rule once: ``check`` enforces it (on concrete values
  only, like every value check here), ``describe`` words it for help texts and
  error messages (``"≥ 0"``, ``"> 0"``, ``"in [0, 1]"``).
  """

  low: float = 0.0
  high: float | None = None
  low_open: bool = False

  def describe(self) -> str:
    """The rule in words for error messages, e.g. ``"in [0, 1]"``."""
    if self.high is not None:
      return (
        f"in {'(' if self.low_open else '['}{_number(self.low)}, "
        f"{_number(self.high)}]"
      )
    return f"{'>' if self.low_open else '≥'} {_number(self.low)}"

  def holds(self, value) -> bool:
    """Whether every element of ``value`` is finite and within the range."""
    v = np.asarray(value)
    if v.dtype.kind not in "biuf" or np.any(~np.isfinite(v)):
      return False
    if np.any(np.abs(v.astype(np.float64)) > FLOAT32_MAX):
      return False  # becomes inf in float32, where every knob is computed
    if self.low is not None and np.any(
      v <= self.low if self.low_open else v < self.low
    ):
      return False
    return self.high is None or not np.any(v > self.high)

  def check(self, value, name: str):
    """Raises ``LinearJaxError`` unless ``value`` (a number or an array of
    them) follows the rule; skipped under ``jit``.
    """
    if value is not None and is_concrete(value) and not self.holds(value):
      v = np.asarray(value)
      if (
        self.high is None
        and v.dtype.kind in "biuf"
        and np.any(
          np.isfinite(v) & (np.abs(v.astype(np.float64)) > FLOAT32_MAX)
        )
      ):
        raise LinearJaxError(
          f"{name} must be {self.describe()} and representable in float32 "
          f"(|v| ≤ {FLOAT32_MAX:.3g}), got {value}"
        )
      raise LinearJaxError(f"{name} must be {self.describe()}, got {value}")
    return value


def _number(x: float) -> str:
  return str(int(x)) if float(x).is_integer() else f"{x:g}"


NONNEGATIVE = Range(0.0)
POSITIVE = Range(0.0, low_open=True)
UNIT_INTERVAL = Range(0.0, 1.0)
AT_LEAST_ONE = Range(1.0)
SEED = Range(0.0, 2.0**32 - 1)  # numpy's and JAX's seeds are uint32
# A step above 1e6 times the gradient overshoots on any data worth training
# on; larger values are typing slips (1e300), refused before they reach
# float32 as inf. 0 is allowed in the library (lbfgs ignores the rate).
MAX_LEARNING_RATE = 1e6
LEARNING_RATE = Range(0.0, MAX_LEARNING_RATE, low_open=True)


def option(default, help: str, *, rule: Range | None = None, choices=None):
  """A config dataclass field that states its own help text and check.

  Args:
    default: the default value.
    help: one line for ``--help``; the rule or choices are appended.
    rule: a ``Range`` the value must follow (None values are skipped).
    choices: the allowed names (e.g. ``sorted(LOSSES)``).

  Returns:
    ``dataclasses.field`` whose ``metadata`` holds ``help``, ``rule`` and
    ``choices``; ``check_options`` enforces them, and
    ``experiments/cli.define_flags`` turns them into flags.
  """
  if rule is not None:
    help = f"{help} ({rule.describe()})"
  return dataclasses.field(
    default=default,
    metadata={
      "help": help,
      "rule": rule,
      "choices": None if choices is None else tuple(choices),
    },
  )


def check_options(config) -> None:
  """Checks every ``option`` field of the dataclass ``config`` against its
  rule (each element of a tuple) and choices (scalar fields; a tuple of names
  is the config's own ``validate`` to look up); raises ``LinearJaxError``
  (one line) at the first bad one.
  """
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    if value is None or isinstance(value, bool):
      continue
    rule = field.metadata.get("rule")
    if rule is not None:
      rule.check(value, field.name)
    choices = field.metadata.get("choices")
    if choices is not None and not isinstance(value, (tuple, list)):
      lookup(dict.fromkeys(choices), value, field.name)


def check_nonnegative(value, name: str):
  """``NONNEGATIVE.check``: a finite number ≥ 0."""
  return NONNEGATIVE.check(value, name)


def check_unit_interval(value, name: str):
  """``UNIT_INTERVAL.check``: a number in [0, 1]."""
  return UNIT_INTERVAL.check(value, name)
