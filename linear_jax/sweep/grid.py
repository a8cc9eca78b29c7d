"""A sweep as data: the product of value lists, grouped by compiled program.

    grid = SweepGrid(losses=("svm", "softmax"), regs=("l2",),
                     reg_strengths=(1e-4, 1e-3, 1e-2, 1e-1),
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
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import NamedTuple

import numpy as np

from linear_jax import checks
from linear_jax import losses as losses_lib
from linear_jax.checks import LinearJaxError
from linear_jax.train import epoch as epoch_lib


def takes_margin(loss: str) -> bool:
  """True for the hinge losses (Δ is one of their options)."""
  return "margin" in losses_lib.LOSS_OPTIONS[loss]


class Point(NamedTuple):
  """One configuration of the sweep; ``index`` is its position in the grid."""

  # Shadows tuple.index (never called on a Point); the grid's own name.
  index: int  # type: ignore[assignment]
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
    """``"loss/reg seed S"``, for logs and reports."""
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
    for name in (
      "losses",
      "regs",
      "reg_strengths",
      "learning_rates",
      "margins",
      "seeds",
    ):
      if not getattr(self, name):
        raise LinearJaxError(f"{name} is empty; give at least one value")
    for loss in self.losses:
      losses_lib.get_loss(loss)
    for name, rule in (
      ("reg_strengths", checks.NONNEGATIVE),
      ("learning_rates", checks.LEARNING_RATE),
      ("margins", checks.NONNEGATIVE),
      ("seeds", checks.SEED),
    ):
      rule.check(getattr(self, name), name)
    for name in ("momentum", "weight_decay", "label_smoothing", "l1_ratio"):
      epoch_lib.HPARAM_RULES[name].check(getattr(self, name), name)
    self.train_configs()
    return self

  def num_points(self) -> int:
    """How many configurations ``points()`` has, without building them."""
    per_loss = (
      len(self.regs)
      * len(self.reg_strengths)
      * len(self.learning_rates)
      * len(self.seeds)
    )
    return sum(
      per_loss * (len(self.margins) if takes_margin(loss) else 1)
      for loss in self.losses
    )

  def train_configs(self) -> tuple[epoch_lib.TrainConfig, ...]:
    """One validated ``TrainConfig`` per (loss, reg), in grid order."""
    return tuple(
      self.train_config(loss, reg)
      for loss, reg in itertools.product(self.losses, self.regs)
    )

  def train_config(self, loss: str, reg: str) -> epoch_lib.TrainConfig:
    """The static ``TrainConfig`` of one (loss, regularizer) group."""
    return epoch_lib.TrainConfig(
      loss=loss,
      reg=reg,
      optimizer=self.optimizer,
      schedule=self.schedule,
      batch_size=self.batch_size,
      epochs=self.epochs,
    ).validate()

  def points(self) -> tuple[Point, ...]:
    """Every configuration, in product order (module docstring)."""
    points: list[Point] = []
    for loss, reg, lam, lr in itertools.product(
      self.losses, self.regs, self.reg_strengths, self.learning_rates
    ):
      margins = self.margins if takes_margin(loss) else (None,)
      for margin, seed in itertools.product(margins, self.seeds):
        points.append(
          Point(
            len(points),
            loss,
            reg,
            float(lam),
            float(lr),
            None if margin is None else float(margin),
            int(seed),
          )
        )
    return tuple(points)

  def groups(self) -> tuple[Group, ...]:
    """Points grouped by (loss, reg, seed), in order of first appearance."""
    by_key: dict = {}
    for p in self.points():
      by_key.setdefault((p.loss, p.reg, p.seed), []).append(p)
    return tuple(
      Group(self.train_config(loss, reg), seed, tuple(points))
      for (loss, reg, seed), points in by_key.items()
    )

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
      l1_ratio=column([self.l1_ratio] * k),
    )
