"""Section ``loss``: loss + gradient throughput, JAX against vectorized NumPy.

For each loss in ``linear_jax.LOSSES``, on N random standardized examples
``X [N, D]`` (float32), labels ``[N]`` and small random ``W [D, C]``, ``b [C]``:

- JAX: ``jit(value_and_grad(linear_jax.objective))`` with ``reg="l2"``;
- JAX, closed form: ``jit`` of ``objective`` and ``objective_gradient``
  (the lecture's closed-form ∂L/∂W, no autodiff);
- NumPy: the course's fully-vectorized loss and gradient
  (``linear_jax.bench.numpy_losses``), same objective, same float32 arrays.

Rates are examples per second (N / median seconds); the ratio is JAX's rate
over NumPy's. Before the rates are reported the results are compared: a
relative difference above 1e-2 is an error. The bound is loose on purpose:
in float32 a few hinge margins within rounding of 0 land on different sides
of the kink in the two implementations, moving the SVM gradients by ~1e-4;
real mistakes (a missing 2 in 2λW, a missing 1/N) move them by ≫ 1e-2. The
exact check, to 1e-10 in float64, is in ``tests/test_benchmark.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from linear_jax import benchmarking
from linear_jax import losses as losses_lib
from linear_jax.bench.numpy_losses import NUMPY_LOSSES
from linear_jax.bench.report import Row
from linear_jax.bench.report import Section
from linear_jax.gradients import objective_gradient
from linear_jax.objective import objective
from linear_jax.checks import LinearJaxError

#: float32 agreement required between the JAX and NumPy results.
AGREEMENT = 1e-2


def problem(num_examples: int, num_features: int, num_classes: int,
            seed: int = 0) -> dict:
  """NumPy float32 ``X [N, D]``, ``y [N]``, ``W [D, C]``, ``b [C]``."""
  rng = np.random.default_rng(seed)
  return {
      "X": rng.standard_normal((num_examples, num_features), np.float32),
      "y": rng.integers(0, num_classes, num_examples).astype(np.int32),
      # Scores of order 1, so that some hinge margins are active.
      "W": (rng.standard_normal((num_features, num_classes), np.float32)
            / np.sqrt(num_features, dtype=np.float32)),
      "b": 0.1 * rng.standard_normal(num_classes, np.float32),
  }


def jax_loss_and_grad(loss: str):
  """``jit((params, x, y, λ) -> (L, ∇L))`` of ``linear_jax.objective``."""
  def full_loss(params, x, y, reg_strength):
    return objective(params, x, y, loss=loss, reg="l2",
                     reg_strength=reg_strength)
  return jax.jit(jax.value_and_grad(full_loss))


def jax_closed_form_loss_and_grad(loss: str):
  """As ``jax_loss_and_grad``, with the closed-form gradient."""
  def loss_and_grad(params, x, y, reg_strength):
    kwargs = dict(loss=loss, reg="l2", reg_strength=reg_strength)
    return (objective(params, x, y, **kwargs),
            objective_gradient(params, x, y, **kwargs))
  return jax.jit(loss_and_grad)


#: impl name -> (row label, JAX loss-and-gradient builder).
JAX_IMPLS = {
    "jax": ("JAX jit(value_and_grad(objective))", jax_loss_and_grad),
    "jax_closed_form": ("JAX jit(objective, objective_gradient), closed form",
                        jax_closed_form_loss_and_grad),
}


def relative_difference(a, b) -> float:
  """max |a − b| / max |b| (b the reference)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def check_agreement(loss: str, jax_out, numpy_out) -> float:
  """Largest relative difference of L, ∂L/∂W, ∂L/∂b.

  Raises ``LinearJaxError`` above ``AGREEMENT``.
  """
  (value, grads), (np_value, np_dw, np_db) = jax_out, numpy_out
  worst = max(relative_difference(np_value, value),
              relative_difference(np_dw, grads["W"]),
              relative_difference(np_db, grads["b"]))
  if not worst <= AGREEMENT:
    raise LinearJaxError(
        f"NumPy reference of {loss!r} differs from linear_jax.objective by "
        f"{worst:.2e} relative (> {AGREEMENT:g}); the comparison is void")
  return worst


def run(*, num_examples: int, num_features: int, num_classes: int,
        reg_strength: float, repeats: int, log=print) -> Section:
  """Times every loss three ways; two JAX rows and a NumPy row per loss."""
  section = Section()
  p = problem(num_examples, num_features, num_classes)
  lam = np.float32(reg_strength)
  params = {"W": jnp.asarray(p["W"]), "b": jnp.asarray(p["b"])}
  x, y = jnp.asarray(p["X"]), jnp.asarray(p["y"])
  shape = f"N={num_examples} D={num_features} C={num_classes}"
  for loss in losses_lib.LOSSES:
    log(f"loss {loss}: timing JAX and NumPy loss + gradient at {shape}")
    numpy_fn = NUMPY_LOSSES[loss]
    numpy_out = numpy_fn(p["W"], p["b"], p["X"], p["y"], lam)
    numpy_s = benchmarking.median_seconds(numpy_fn, p["W"], p["b"], p["X"],
                                          p["y"], lam, repeats=repeats)
    section.add(Row(
        "loss", f"{loss} loss + gradient, NumPy vectorized",
        seconds=numpy_s, rate=num_examples / numpy_s, rate_unit="examples/s",
        note=shape,
        extra={"loss": loss, "impl": "numpy", "num_examples": num_examples}),
        log)
    for impl, (label, build) in JAX_IMPLS.items():
      jax_fn = build(loss)
      args = (params, x, y, jnp.float32(lam))
      worst = check_agreement(loss, jax_fn(*args), numpy_out)
      jax_s = benchmarking.median_seconds(jax_fn, *args, repeats=repeats)
      section.add(Row(
          "loss", f"{loss} loss + gradient, {label}",
          seconds=jax_s, rate=num_examples / jax_s, rate_unit="examples/s",
          ratio=numpy_s / jax_s, ratio_of="JAX/NumPy examples/s",
          note=f"{shape}, agrees with NumPy to {worst:.1e}",
          extra={"loss": loss, "impl": impl, "num_examples": num_examples}),
          log)
  return section
