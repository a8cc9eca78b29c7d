"""Sweep grid and memory arithmetic (pure Python, no training)."""

import numpy as np
import pytest

from linear_jax.checks import LinearJaxError
from linear_jax.sweep import grid as grid_lib
from linear_jax.sweep import memory, report
from linear_jax.train import epoch as epoch_lib


def test_points_in_product_order_softmax_has_no_margin_axis():
  grid = grid_lib.SweepGrid(
    losses=("svm", "softmax"),
    regs=("l2", "l1"),
    reg_strengths=(0.0, 1e-3),
    learning_rates=(0.1,),
    margins=(0.5, 1.0),
    seeds=(0, 7),
  )
  points = grid.points()
  # svm: 2 regs × 2 λ × 1 lr × 2 Δ × 2 seeds; softmax: no Δ axis.
  assert len(points) == 16 + 8
  assert [p.index for p in points] == list(range(24))
  assert points[0] == grid_lib.Point(0, "svm", "l2", 0.0, 0.1, 0.5, 0)
  assert points[1] == grid_lib.Point(1, "svm", "l2", 0.0, 0.1, 0.5, 7)
  assert points[2].margin == 1.0 and points[4].reg_strength == 1e-3
  assert all(p.margin is None for p in points if p.loss == "softmax")
  groups = grid.groups()
  assert [g.name for g in groups] == [
    "svm/l2 seed 0",
    "svm/l2 seed 7",
    "svm/l1 seed 0",
    "svm/l1 seed 7",
    "softmax/l2 seed 0",
    "softmax/l2 seed 7",
    "softmax/l1 seed 0",
    "softmax/l1 seed 7",
  ]
  assert [len(g.points) for g in groups] == [4] * 4 + [2] * 4
  assert groups[2].config == epoch_lib.TrainConfig(
    loss="svm", reg="l1", optimizer="momentum", batch_size=256, epochs=10
  )
  assert all(p.seed == g.seed for g in groups for p in g.points)


def test_stack_hparams_matches_make_hparams():
  grid = grid_lib.SweepGrid(
    losses=("svm", "softmax"),
    reg_strengths=(1e-4,),
    learning_rates=(0.3, 1e-2),
    margins=(2.0,),
    momentum=0.8,
    label_smoothing=0.1,
  )
  points = grid.points()
  stacked = grid.stack_hparams(points)
  for k, p in enumerate(points):
    alone = epoch_lib.make_hparams(
      learning_rate=p.learning_rate,
      reg_strength=p.reg_strength,
      margin=1.0 if p.margin is None else p.margin,
      momentum=0.8,
      label_smoothing=0.1,
    )
    for name, value in alone._asdict().items():
      assert getattr(stacked, name).dtype == np.float32
      assert getattr(stacked, name)[k] == np.asarray(value), (name, k)


@pytest.mark.parametrize(
  "change,words",
  [
    (dict(losses=("svm", "hinge")), "unknown loss 'hinge'"),
    (dict(regs=("l3",)), "unknown regularizer 'l3'"),
    (dict(learning_rates=(0.0,)), r"must be in \(0, 1000000\]"),
    (dict(learning_rates=(1e300,)), r"must be in \(0, 1000000\]"),
    (dict(reg_strengths=(-1.0,)), "≥ 0"),
    (dict(optimizer="rmsprop"), "unknown optimizer"),
    (dict(momentum=1.5), "momentum must be in"),
  ],
)
def test_grid_validate(change, words):
  with pytest.raises(LinearJaxError, match=words):
    grid_lib.SweepGrid(**change).validate()


def test_state_bytes_counts_optimizer_slots():
  d, c = 3072, 10
  params = (d + 1) * c * 4
  state = lambda opt: memory.state_bytes(
    epoch_lib.TrainConfig(optimizer=opt), d, c, 49000
  )
  # Plus a few scalar step counters (int32).
  assert 0 <= state("sgd") - params <= 16
  assert 0 <= state("momentum") - 2 * params <= 16
  assert 0 <= state("adam") - 3 * params <= 16


@pytest.mark.parametrize("losses", [("svm",), ("softmax",), ("svm", "softmax")])
def test_num_points_counts_without_expanding(losses):
  grid = grid_lib.SweepGrid(
    losses=losses,
    regs=("l2", "l1"),
    reg_strengths=(0.0, 1e-3, 1e-2),
    learning_rates=(0.1, 0.2),
    margins=(0.5, 1.0, 2.0),
    seeds=(0, 7),
  )
  assert grid.num_points() == len(grid.points())


def test_a_huge_grid_is_refused_before_it_is_expanded(monkeypatch):
  """10⁹ configurations: one line in well under a second, no Point built
  (expanding them took 10 GB within 31 s).
  """
  from linear_jax.sweep import engine
  from linear_jax.sweep.experiment import SweepRunConfig

  def expand(self):
    raise AssertionError("the grid was expanded")

  monkeypatch.setattr(grid_lib.SweepGrid, "points", expand)
  monkeypatch.setenv("LINEAR_JAX_MEMORY_BUDGET", "16GiB")
  config = SweepRunConfig(
    losses=("svm",),
    reg_strengths=tuple(np.linspace(0, 1, 1000)),
    learning_rates=tuple(np.linspace(1e-3, 1, 1000)),
    margins=tuple(np.linspace(0, 2, 1000)),
    epochs=2,
  )
  config.validate()  # the grid's names and ranges, not expanded
  with pytest.raises(LinearJaxError) as e:
    engine.check_host(config.grid())  # what experiment.run does first
  message = str(e.value)
  assert "the sweep's 1,000,000,000 configurations × 2 epochs" in message
  assert "over the 16.00 GiB memory budget" in message and "\n" not in message
  # The host estimate grows with configurations and epochs; the checkpoint
  # holds 5 + 4·epochs float64 numbers per configuration.
  one = memory.sweep_host_bytes(1, 10)
  assert memory.sweep_host_bytes(1000, 10) == 1000 * one
  assert memory.sweep_host_bytes(1, 20) > one
  assert memory.sweep_checkpoint_bytes(10, 3) == 10 * 8 * (5 + 4 * 3)


def test_config_bytes_formula_and_auto_chunk():
  config = epoch_lib.TrainConfig(optimizer="momentum", batch_size=256)
  per = memory.config_bytes(config, 3072, 10, 49000, 1000)
  state = memory.state_bytes(config, 3072, 10, 49000)
  params = 3073 * 10 * 4
  assert per == int(2.0 * (2 * state + 2 * params + (4 * 256 + 1000) * 40))
  shared = memory.data_bytes(config, 3072, 49000, 1000)
  assert shared == 50000 * 3072 * 4 + 50000 * 4 + 256 * 3072 * 4 + 49000 * 4
  budget = 2 << 30
  assert (
    memory.auto_chunk_size(per, shared, 1, budget)
    == (budget - shared) // per
    == 934
  )
  # Per device: each of 4 devices holds the data and K/4 configurations.
  assert memory.auto_chunk_size(per, shared, 4, budget) == 4 * 934
  with pytest.raises(LinearJaxError, match="exceed the 0.50 GiB device budget"):
    memory.auto_chunk_size(per, shared, 1, 1 << 29)
  assert memory.resolve_chunk_size(5, 4, per, shared, budget) == 8
  assert memory.resolve_chunk_size(0, 2, per, shared, budget) == 2 * 934


@pytest.mark.parametrize(
  "count,chunk,devices,expected",
  [
    (6, 100, 4, (1, 8)),  # one chunk, padded to 8
    (70, 64, 1, (2, 35)),  # balanced, not 64 + 6
    (70, 64, 4, (2, 36)),
    (9, 4, 4, (3, 4)),
    (8, 8, 8, (1, 8)),
  ],
)
def test_split_evenly(count, chunk, devices, expected):
  chunks, length = memory.split_evenly(count, chunk, devices)
  assert (chunks, length) == expected
  assert length % devices == 0 and chunks * length >= count
  assert length <= max(chunk, devices)


def test_report_rows_csv_and_heatmap_grid():
  rows = [
    dict(
      loss="svm",
      reg="l2",
      reg_strength=lam,
      learning_rate=lr,
      margin=m,
      seed=0,
      val_accuracy=acc,
      train_accuracy=0.5,
      data_loss=1.0,
      reg_loss=0.1,
      diverged=div,
      diverged_epoch=2 if div else None,
      test_accuracy=None,
    )
    for lam, lr, m, acc, div in [
      (0.0, 0.1, 1.0, 0.5, False),
      (0.0, 0.1, 2.0, 0.7, False),
      (0.0, 9.0, 1.0, float("nan"), True),
      (1.0, 0.1, 1.0, 0.6, False),
      (1.0, 9.0, 1.0, 0.9, True),
    ]
  ]
  lams, lrs, acc = report.heatmap_grid(rows, "svm", "l2")
  assert lams == [0.0, 1.0] and lrs == [0.1, 9.0]
  np.testing.assert_array_equal(acc, [[0.7, np.nan], [0.6, np.nan]])
  text = report.csv_text(rows)
  lines = text.splitlines()
  assert lines[0] == ",".join(report.COLUMNS)
  assert lines[3] == "svm,l2,0.0,9.0,1.0,0,,0.5,1.0,0.1,True,2,"
  before = report.digest(rows)
  assert before == report.digest([dict(r) for r in rows])
  rows[0]["val_accuracy"] = 0.5000001
  assert report.digest(rows) != before
  assert report.heatmap_name("svm", "l2", ["l2"]) == "heatmap_svm.png"
  assert report.heatmap_name("svm", "l1", ["l2", "l1"]) == "heatmap_svm_l1.png"


def test_float32_metrics_are_written_short_and_exact():
  values = np.random.default_rng(0).random(1000).astype(np.float32)
  for v in values:
    short = report.float32_value(v)
    # At most 9 significant digits (float32's round-trip bound), not 17.
    digits = repr(short).split("e")[0].replace(".", "").lstrip("0")
    assert np.float32(short) == v and len(digits) <= 9, short
  assert report.float32_value(np.float32(0.9975)) == 0.9975
  assert np.isnan(report.float32_value(np.nan))
  assert report.float32_value(None) is None
