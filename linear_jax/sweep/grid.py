"""A sweep as data: the product of value lists, grouped by compiled program.

    grid = SweepGrid(losses=("svm", "softmax"), regs=("l2",),
                     reg_strengths=parse_values("logspace:1e-4:1e-1:4",
                                                "reg_strengths"),
                     learning_rates=(1e-3, 1e-2), epochs=5)
    grid.points()   # 2 × 1 × 4 × 2 = 16 ``Point``s, in product order
    grid.groups()   # 2 ``Group``s: (svm, l2, seed 0) and (softmax, l2, seed 0)

The configurations are the product losses × regs × reg_strengths (λ) ×
learning_rates × margins (Δ) × seeds, enumerated in that order (the last axis
varies fastest); ``Point.index`` is the position in that order. Δ only
exists for the hinge losses (``losses.LOSS_OPTIONS``): a loss without a
margin (softmax) gets one point per (λ, learning rate, seed), with
``margin=None``, instead of identical copies.

What changes the compiled program (loss type, regularizer type; optimizer,
schedule, batch size and epochs are fixed per sweep) selects a ``Group``'s
``TrainConfig``. Within a group the numeric knobs (λ, learning rate, Δ) are
stacked into ``HyperParams`` of shape ``[K]`` and vmapped. A group also has
one training seed: the configurations of a group share the minibatch
permutation (one gather of the data per step for all of them), so different
seeds are separate groups that reuse the same compiled program (the key is
an unbatched argument, not a constant).

Value lists on the command line (``parse_values``) are comma-separated items,
each a number or a range: ``logspace:START:STOP:NUM`` (NUM values spaced
evenly in log10 from START to STOP, both included, both > 0) or
``linspace:START:STOP:NUM``; e.g. ``0,logspace:1e-4:1e-1:4`` is
``0, 1e-4, 1e-3, 1e-2, 1e-1``.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import NamedTuple

import numpy as np

from linear_jax import losses as losses_lib
from linear_jax.train import epoch as epoch_lib
from linear_jax import checks
from linear_jax.checks import LinearJaxError

RANGE_KINDS = ("logspace", "linspace")


def _number(text: str, flag: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise LinearJaxError(
        f"--{flag}: {text!r} is not a number; use a comma list like 1e-4,1e-3 "
        "or a range like logspace:1e-4:1e-1:4") from None
  if not np.isfinite(value):
    raise LinearJaxError(f"--{flag}: {text!r} is not a finite number")
  return value


def _range(item: str, flag: str) -> list[float]:
  kind, *parts = item.split(":")
  if kind not in RANGE_KINDS or len(parts) != 3:
    raise LinearJaxError(
        f"--{flag}: bad range {item!r}; write logspace:START:STOP:NUM or "
        "linspace:START:STOP:NUM, e.g. logspace:1e-4:1e-1:4")
  start, stop = _number(parts[0], flag), _number(parts[1], flag)
  try:
    num = int(parts[2])
  except ValueError:
    num = 0
  if num < 1:
    raise LinearJaxError(
        f"--{flag}: in {item!r} NUM must be an integer ≥ 1, got {parts[2]!r}")
  if kind == "logspace":
    if start <= 0 or stop <= 0:
      raise LinearJaxError(
          f"--{flag}: logspace needs START and STOP > 0, got {item!r}; use "
          "linspace or list 0 separately, e.g. 0,logspace:1e-4:1e-1:4")
    return [float(v) for v in np.logspace(np.log10(start), np.log10(stop), num)]
  return [float(v) for v in np.linspace(start, stop, num)]


def parse_values(text: str, flag: str, *, minimum: float = 0.0,
                 strict: bool = False) -> tuple[float, ...]:
  """A comma list of numbers and ranges -> a tuple of floats (module docstring).

  Args:
    text: e.g. ``"1e-3,1e-2"``, ``"logspace:1e-4:1e-1:7"``, ``"0,logspace:..."``.
    flag: the flag's name, for error messages.
    minimum: every value must be ≥ ``minimum`` (> when ``strict``).
    strict: require values > ``minimum``.

  Returns:
    The values in the order given, duplicates dropped.

  Raises:
    LinearJaxError: one line naming the flag and the expected syntax.
  """
  items = [s.strip() for s in str(text).split(",") if s.strip()]
  if not items:
    raise LinearJaxError(f"--{flag} is empty; give at least one value")
  values = []
  for item in items:
    values.extend(_range(item, flag) if ":" in item else [_number(item, flag)])
  for v in values:
    if v < minimum or (strict and v == minimum):
      op = ">" if strict else "≥"
      raise LinearJaxError(f"--{flag}: every value must be {op} {minimum:g}, "
                           f"got {v:g}")
  return tuple(dict.fromkeys(values))


def parse_names(text, flag: str, registry: dict, what: str) -> tuple[str, ...]:
  """``"svm,softmax"`` (or a sequence) -> names checked against ``registry``."""
  items = text.split(",") if isinstance(text, str) else list(text)
  names = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
  if not names:
    raise LinearJaxError(f"--{flag} is empty; valid names: "
                         f"{', '.join(sorted(registry))}")
  for name in names:
    try:
      checks.lookup(registry, name, what)
    except LinearJaxError as e:
      raise LinearJaxError(f"--{flag}: {e}") from None
  return names


def parse_ints(text, flag: str) -> tuple[int, ...]:
  """``"0,1,2"`` -> ``(0, 1, 2)`` (seeds)."""
  items = text.split(",") if isinstance(text, str) else list(text)
  try:
    values = tuple(dict.fromkeys(int(str(s).strip()) for s in items
                                 if str(s).strip()))
  except ValueError:
    raise LinearJaxError(
        f"--{flag}: {text!r} must be comma-separated integers, e.g. 0,1,2"
    ) from None
  if not values or min(values) < 0:
    raise LinearJaxError(f"--{flag}: give integers ≥ 0, got {text!r}")
  return values


def takes_margin(loss: str) -> bool:
  """True for the hinge losses (Δ is one of their options)."""
  return "margin" in losses_lib.LOSS_OPTIONS[loss]


class Point(NamedTuple):
  """One configuration of the sweep; ``index`` is its position in the grid."""
  index: int
  loss: str
  reg: str
  reg_strength: float
  learning_rate: float
  margin: float | None  # None for losses without Δ (softmax)
  seed: int


@dataclasses.dataclass(frozen=True)
class Group:
  """Configurations run by one compiled program with one permutation key.

  Attributes:
    config: the static ``TrainConfig`` (loss, reg, optimizer, ...).
    seed: the training seed (permutations), shared by all ``points``.
    points: the group's configurations, in grid order.
  """
  config: epoch_lib.TrainConfig
  seed: int
  points: tuple[Point, ...]

  @property
  def name(self) -> str:
    return f"{self.config.loss}/{self.config.reg} seed {self.seed}"


@dataclasses.dataclass(frozen=True)
class SweepGrid:
  """The sweep: value lists (vmapped) and static choices (one per sweep).

  Attributes:
    losses, regs: names in ``linear_jax.LOSSES`` / ``REGULARIZERS``; each
      (loss, reg) pair is a separate compiled program.
    reg_strengths: λ values ≥ 0.
    learning_rates: values > 0.
    margins: Δ values ≥ 0 (hinge losses only).
    seeds: training seeds (minibatch permutations); each is its own group.
    optimizer, schedule, batch_size, epochs: as ``TrainConfig`` (static).
    momentum, weight_decay, label_smoothing, l1_ratio: fixed numeric knobs,
      as in ``linear_jax.train.make_hparams``.
  """
  losses: tuple[str, ...] = ("svm", "softmax")
  regs: tuple[str, ...] = ("l2",)
  reg_strengths: tuple[float, ...] = (1e-4,)
  learning_rates: tuple[float, ...] = (1e-2,)
  margins: tuple[float, ...] = (1.0,)
  seeds: tuple[int, ...] = (0,)
  optimizer: str = "momentum"
  schedule: str = "constant"
  batch_size: int | None = 256
  epochs: int = 10
  momentum: float = 0.9
  weight_decay: float = 1e-4
  label_smoothing: float = 0.0
  l1_ratio: float = 0.5

  def validate(self) -> "SweepGrid":
    """Checks names and ranges (pure Python: safe before JAX starts)."""
    parse_names(self.losses, "losses", losses_lib.LOSSES, "loss")
    for name, values in (("reg_strengths", self.reg_strengths),
                         ("learning_rates", self.learning_rates),
                         ("margins", self.margins)):
      if not values:
        raise LinearJaxError(f"--{name} is empty; give at least one value")
      if min(values) < 0 or not np.all(np.isfinite(values)):
        raise LinearJaxError(f"--{name}: values must be finite and ≥ 0, got "
                             f"{list(values)}")
    if min(self.learning_rates) <= 0:
      raise LinearJaxError(
          f"--learning_rates: values must be > 0, got {list(self.learning_rates)}")
    if not self.seeds:
      raise LinearJaxError("--seeds is empty; give at least one seed")
    for value, name in ((self.momentum, "momentum"),
                        (self.label_smoothing, "label_smoothing"),
                        (self.l1_ratio, "l1_ratio")):
      checks.check_unit_interval(value, name)
    checks.check_nonnegative(self.weight_decay, "weight_decay")
    for loss, reg in itertools.product(self.losses, self.regs):
      self.train_config(loss, reg)
    return self

  def train_config(self, loss: str, reg: str) -> epoch_lib.TrainConfig:
    return epoch_lib.TrainConfig(
        loss=loss, reg=reg, optimizer=self.optimizer, schedule=self.schedule,
        batch_size=self.batch_size, epochs=self.epochs).validate()

  def points(self) -> tuple[Point, ...]:
    """Every configuration, in product order (module docstring)."""
    points = []
    for loss, reg, lam, lr in itertools.product(
        self.losses, self.regs, self.reg_strengths, self.learning_rates):
      margins = self.margins if takes_margin(loss) else (None,)
      for margin, seed in itertools.product(margins, self.seeds):
        points.append(Point(len(points), loss, reg, float(lam), float(lr),
                            None if margin is None else float(margin),
                            int(seed)))
    return tuple(points)

  def groups(self) -> tuple[Group, ...]:
    """Points grouped by (loss, reg, seed), in order of first appearance."""
    by_key: dict = {}
    for p in self.points():
      by_key.setdefault((p.loss, p.reg, p.seed), []).append(p)
    return tuple(Group(self.train_config(loss, reg), seed, tuple(points))
                 for (loss, reg, seed), points in by_key.items())

  def stack_hparams(self, points) -> epoch_lib.HyperParams:
    """``HyperParams`` of float32 numpy ``[K]``, one entry per point.

    The same float32 values as ``linear_jax.train.make_hparams`` for each point alone
    (Δ = 1 where the loss has none; it is unused there).
    """
    k = len(points)
    column = lambda values: np.asarray(values, np.float32).reshape(k)
    return epoch_lib.HyperParams(
        learning_rate=column([p.learning_rate for p in points]),
        reg_strength=column([p.reg_strength for p in points]),
        margin=column([1.0 if p.margin is None else p.margin for p in points]),
        label_smoothing=column([self.label_smoothing] * k),
        momentum=column([self.momentum] * k),
        weight_decay=column([self.weight_decay] * k),
        l1_ratio=column([self.l1_ratio] * k))
