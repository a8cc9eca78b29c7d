"""Section ``accuracy``: training seconds to a target test accuracy.

On a real dataset (CIFAR-10 JPEG by default), standardized on its training
split. For each of softmax and SVM, the recipe (momentum 0.9, cosine
schedule, batch B, L2 λ, the loss's learning rate) is run for E = 1, 2, …
epochs; the first E whose TEST accuracy reaches the target gives the time:
``FitResult.train_seconds`` (compilation and test evaluation excluded; the
per-epoch validation pass of 1,000 examples is inside the epoch program and
included), the median of up to 3 fits of that E. If no E ≤ ``max_epochs``
reaches it, the row says so and gives the best E's accuracy and time.

Peers on the same arrays: scikit-learn's ``SGDClassifier`` (hinge, log_loss,
5 epochs) and ``LogisticRegression`` (lbfgs, skippable), each one fit; and,
if ``import torch`` works, the same recipes as an eager PyTorch loop,
searched over E the same way.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpy as np

from linear_jax import data as data_lib
from linear_jax import training
from linear_jax.bench import sklearn_peers
from linear_jax.bench import torch_peer
from linear_jax.bench.config import BenchConfig
from linear_jax.bench.report import Row
from linear_jax.bench.report import Section
from linear_jax.fit import fit
from linear_jax.checks import LinearJaxError

#: Fits of the winning E whose median is reported.
MAX_TIMING_FITS = 3

#: (seconds, test accuracy) of training for E epochs.
Trainer = Callable[[int], tuple[float, float]]


def recipe(loss: str, epochs: int, batch_size: int, unroll: int
           ) -> training.TrainConfig:
  """Momentum, cosine schedule, batch B, for E epochs."""
  return training.TrainConfig(loss=loss, optimizer="momentum",
                              schedule="cosine", batch_size=batch_size,
                              epochs=epochs, unroll=unroll)


def jax_trainer(ds, data: training.DeviceData, *, loss: str,
                learning_rate: float, reg_strength: float, batch_size: int,
                unroll: int, fused: bool = False) -> Trainer:
  """E -> (``fit``'s train seconds, test accuracy) of the JAX recipe
  (``fused``: with the fused C++ CPU epoch, ``kernels.cpu_epoch``)."""
  hparams = training.make_hparams(learning_rate=learning_rate,
                                  reg_strength=reg_strength)
  x_test, y_test = jnp.asarray(ds.x_test), jnp.asarray(ds.y_test)

  def train(epochs: int) -> tuple[float, float]:
    config = recipe(loss, epochs, batch_size, unroll)
    epoch_fn = None
    if fused:
      from linear_jax.kernels import cpu_epoch  # pylint: disable=g-import-not-at-top
      epoch_fn = cpu_epoch.fused_epoch(config)
    result = fit(config, hparams, data, num_classes=ds.num_classes,
                 log=False, epoch_fn=epoch_fn)
    return (result.train_seconds,
            float(training.accuracy(result.params, x_test, y_test)))
  return train


def torch_trainer(ds, *, loss: str, learning_rate: float, reg_strength: float,
                  batch_size: int) -> Trainer:
  """E -> (seconds, test accuracy) of the same recipe in PyTorch."""
  def train(epochs: int) -> tuple[float, float]:
    return torch_peer.train(
        ds.x_train, ds.y_train, ds.x_test, ds.y_test, loss=loss,
        epochs=epochs, learning_rate=learning_rate,
        reg_strength=reg_strength, batch_size=batch_size)
  return train


def first_reaching(train: Trainer, *, target: float, max_epochs: int,
                   repeats: int, name: str, log=print) -> dict:
  """Tries E = 1 … ``max_epochs``; the first E with accuracy ≥ ``target``.

  Returns:
    ``{"reached", "epochs", "accuracy", "seconds", "fits"}``: the first E
    reaching the target, its accuracy and the median seconds of ``fits``
    runs (``min(repeats, 3)``); or, if none did, the most accurate E and the
    seconds of its one run.
  """
  best = None
  for epochs in range(1, max_epochs + 1):
    seconds, acc = train(epochs)
    log(f"  {name}: E={epochs} test accuracy {acc:.4f}, {seconds:.2f} s")
    if acc >= target:
      times = [seconds] + [train(epochs)[0] for _ in
                           range(min(repeats, MAX_TIMING_FITS) - 1)]
      return {"reached": True, "epochs": epochs, "accuracy": acc,
              "seconds": float(np.median(times)), "fits": len(times)}
    if best is None or acc > best["accuracy"]:
      best = {"reached": False, "epochs": epochs, "accuracy": acc,
              "seconds": seconds, "fits": 1}
  return best


def search_row(impl: str, loss: str, result: dict, *, target: float,
               max_epochs: int, learning_rate: float, batch_size: int) -> Row:
  """The row of one ``first_reaching`` result."""
  if result["reached"]:
    note = (f"reached at E={result['epochs']} epoch(s); median of "
            f"{result['fits']} fit(s)")
  else:
    note = (f"not reached in ≤ {max_epochs} epochs, best "
            f"{result['accuracy']:.4f} at E={result['epochs']}")
  return Row(
      "accuracy", f"{impl} {loss} to {target:.0%} test acc (momentum, cosine, "
      f"B={batch_size}, lr={learning_rate:g})",
      seconds=result["seconds"], accuracy=result["accuracy"], note=note,
      extra={"impl": impl, "loss": loss, "learning_rate": learning_rate,
             "target": target, **result})


def fused_softmax_row(section, ds, data, config: BenchConfig, search: dict,
                      shown: dict, log=print) -> None:
  """The softmax recipe again with the fused C++ CPU epoch, where it builds."""
  from linear_jax.kernels import cpu_epoch  # pylint: disable=g-import-not-at-top
  missing = cpu_epoch.available()
  if missing:
    section.notes.append(f"fused CPU epoch skipped: {missing}")
    return
  lr = config.softmax_lr
  log(f"accuracy: JAX softmax (fused C++ CPU epoch), lr {lr:g}")
  train = jax_trainer(ds, data, loss="softmax", learning_rate=lr,
                      reg_strength=config.reg_strength,
                      batch_size=config.accuracy_batch_size, unroll=1,
                      fused=True)
  result = first_reaching(train, name="JAX softmax fused", **search)
  section.add(search_row("JAX fused C++ epoch", "softmax", result,
                         learning_rate=lr, **shown), log)


def run(config: BenchConfig, log=print) -> Section:
  """Loads the dataset (or notes why not), then times every recipe and peer."""
  section = Section()
  log(f"accuracy: loading {config.accuracy_dataset} (standardized)")
  try:
    ds = data_lib.load_dataset(config.accuracy_dataset, standardize=True)
  except LinearJaxError as e:
    note = f"section skipped, {config.accuracy_dataset} not available: {e}"
    log(f"accuracy: {note}")
    section.notes.append(note)
    return section
  section.notes.append(
      f"dataset {config.accuracy_dataset}: {len(ds.y_train)} train / "
      f"{len(ds.y_val)} val / {len(ds.y_test)} test, standardized; λ = "
      f"{config.reg_strength:g}; JAX seconds are FitResult.train_seconds")
  data = training.DeviceData.put(ds.x_train, ds.y_train, ds.x_val, ds.y_val)
  search = dict(target=config.target_accuracy, max_epochs=config.max_epochs,
                repeats=config.repeats, log=log)
  shown = dict(target=config.target_accuracy, max_epochs=config.max_epochs,
               batch_size=config.accuracy_batch_size)
  recipes = (("softmax", config.softmax_lr), ("svm", config.svm_lr))
  for loss, lr in recipes:
    log(f"accuracy: JAX {loss}, lr {lr:g}, E = 1 … {config.max_epochs}")
    train = jax_trainer(ds, data, loss=loss, learning_rate=lr,
                        reg_strength=config.reg_strength,
                        batch_size=config.accuracy_batch_size, unroll=1)
    result = first_reaching(train, name=f"JAX {loss}", **search)
    section.add(search_row("JAX", loss, result, learning_rate=lr, **shown), log)
  fused_softmax_row(section, ds, data, config, search, shown, log)

  for loss in ("hinge", "log_loss"):
    log(f"accuracy: scikit-learn SGDClassifier(loss={loss!r}), 5 epochs")
    seconds, acc = sklearn_peers.sgd_classifier(
        loss, ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    section.add(Row(
        "accuracy", f"scikit-learn SGDClassifier({loss}), max_iter=5",
        seconds=seconds, accuracy=acc, note="fit seconds, 1 run, α=1e-4 OvR",
        extra={"impl": "sklearn", "loss": loss}), log)
  if config.skip_slow_peers:
    section.notes.append("LogisticRegression skipped (--skip_slow_peers)")
  else:
    log("accuracy: scikit-learn LogisticRegression(lbfgs, C=1e-3), ~40 s")
    seconds, acc = sklearn_peers.logistic_regression(
        ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    section.add(Row(
        "accuracy", "scikit-learn LogisticRegression(lbfgs, C=1e-3, "
        "max_iter=100)", seconds=seconds, accuracy=acc,
        note="fit seconds, 1 run", extra={"impl": "sklearn", "loss": "softmax"}),
        log)

  missing = torch_peer.available()
  if missing:
    section.notes.append(f"PyTorch peer skipped ({missing})")
    log(f"accuracy: PyTorch peer skipped ({missing})")
    return section
  for loss, lr in recipes:
    log(f"accuracy: PyTorch {loss}, lr {lr:g}, E = 1 … {config.max_epochs}")
    train = torch_trainer(ds, loss=loss, learning_rate=lr,
                          reg_strength=config.reg_strength,
                          batch_size=config.accuracy_batch_size)
    result = first_reaching(train, name=f"PyTorch {loss}", **search)
    section.add(search_row("PyTorch nn.Linear", loss, result,
                           learning_rate=lr, **shown), log)
  return section
