"""What one benchmark run measures: sizes, repeats, recipes (``BenchConfig``).

``FULL`` is CIFAR-10's shape (D = 3,072, C = 10) at the sizes of issue 6;
``TINY`` runs every section in seconds (the end-to-end test), on the
embedded ``digits`` set instead of CIFAR-10, without the slow peers.
"""

from __future__ import annotations

import dataclasses

from linear_jax import checks

SECTIONS = ("loss", "epoch", "accuracy", "sweep")


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  """Sizes and recipes of one run.

  Attributes:
    sections: which of ``SECTIONS`` to run, in that order.
    n_loss: N of the loss + gradient throughput section.
    n_epoch: N of the epoch and sweep sections (synthetic uint8 pixels).
    num_features: D of the synthetic data (CIFAR-10: 32·32·3).
    num_classes: C of the synthetic data.
    batch_size: B of the epoch and sweep sections.
    accuracy_batch_size: B of the time-to-accuracy recipes.
    unroll: the larger ``lax.scan`` unroll measured next to unroll = 1 (the
      accuracy recipes use unroll = 1).
    repeats: timings are the median of this many runs, after a warm-up
      (time to accuracy: at most 3, the sklearn/torch peers: 1 run).
    reg_strength: λ of the L2 penalty λ ΣW² (loss section and recipes).
    sweep_configs: K of the sweep section, timed against one configuration.
    accuracy_dataset: a ``linear_jax.data`` name, loaded standardized.
    target_accuracy: the test accuracy the recipes must reach.
    max_epochs: the longest recipe tried (E = 1, 2, ..., max_epochs).
    softmax_lr, svm_lr: learning rates of the softmax and SVM recipes.
    skip_slow_peers: skip scikit-learn's LogisticRegression (~40 s).
    copy_bytes: array size of the copy-bandwidth ceiling.
    matmul_size: side of the square matmul of the FLOP-rate ceiling.
  """
  sections: tuple = SECTIONS
  n_loss: int = 10_000
  n_epoch: int = 50_000
  num_features: int = 3072
  num_classes: int = 10
  batch_size: int = 256
  accuracy_batch_size: int = 512
  unroll: int = 4
  repeats: int = 5
  reg_strength: float = 1e-3
  sweep_configs: int = 64
  accuracy_dataset: str = "cifar10_jpeg"
  target_accuracy: float = 0.40
  max_epochs: int = 10
  softmax_lr: float = 1e-2
  svm_lr: float = 1e-3
  skip_slow_peers: bool = False
  copy_bytes: int = 1 << 28
  matmul_size: int = 1024

  def validate(self) -> "BenchConfig":
    for name in self.sections:
      checks.lookup(dict.fromkeys(SECTIONS), name, "section")
    for name in ("n_loss", "n_epoch", "num_features", "batch_size",
                 "accuracy_batch_size", "unroll",
                 "repeats", "sweep_configs", "max_epochs", "matmul_size"):
      if getattr(self, name) < 1:
        raise checks.LinearJaxError(
            f"{name} must be ≥ 1, got {getattr(self, name)}")
    if self.num_classes < 2:
      raise checks.LinearJaxError(
          f"num_classes must be ≥ 2, got {self.num_classes}")
    checks.check_nonnegative(self.reg_strength, "reg_strength (λ)")
    checks.check_unit_interval(self.target_accuracy, "target_accuracy")
    for name in ("softmax_lr", "svm_lr"):
      if not getattr(self, name) > 0:
        raise checks.LinearJaxError(
            f"{name} must be > 0, got {getattr(self, name)}")
    return self


FULL = BenchConfig()

TINY = BenchConfig(
    n_loss=512, n_epoch=512, num_features=48, batch_size=64,
    accuracy_batch_size=64, unroll=2, repeats=1,
    sweep_configs=8, accuracy_dataset="digits", target_accuracy=0.85,
    softmax_lr=0.1, svm_lr=0.03, skip_slow_peers=True, copy_bytes=1 << 22,
    matmul_size=256)
