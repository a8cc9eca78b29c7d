"""optax optimizers and learning-rate schedules, chosen by name.

Numeric knobs (learning rate, momentum, weight decay) may be traced arrays,
so a vmapped sweep over them shares one compiled program. The name of the
optimizer and of the schedule are static: they change the program.
"""

from __future__ import annotations

import optax

from linear_jax import checks

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "lbfgs")
SCHEDULES = ("constant", "cosine", "step", "exponential")

#: Optimizers that need the full batch (line search on the full objective).
FULL_BATCH_ONLY = ("lbfgs",)


def unit_schedule(name: str, total_steps: int, steps_per_epoch: int):
  """A schedule starting at 1.0, to be multiplied by the learning rate.

  - ``constant``: 1
  - ``cosine``: ½(1 + cos(π t / T)) down to 0 at the last step
  - ``step``: ×0.1 at 50 % and again at 75 % of the steps
  - ``exponential``: ×0.9 per epoch
  """
  checks.lookup(dict.fromkeys(SCHEDULES), name, "schedule")
  if name == "constant":
    return optax.constant_schedule(1.0)
  if name == "cosine":
    return optax.cosine_decay_schedule(1.0, decay_steps=max(total_steps, 1))
  if name == "step":
    return optax.piecewise_constant_schedule(
      1.0, {int(total_steps * 0.5): 0.1, int(total_steps * 0.75): 0.1}
    )
  return optax.exponential_decay(
    1.0, transition_steps=max(steps_per_epoch, 1), decay_rate=0.9
  )


def make_optimizer(
  name: str,
  *,
  learning_rate,
  schedule: str = "constant",
  total_steps: int = 1,
  steps_per_epoch: int = 1,
  momentum=0.9,
  weight_decay=1e-4,
) -> optax.GradientTransformationExtraArgs:
  """An optax optimizer; ``learning_rate`` etc. may be traced scalars.

  ``lbfgs`` ignores the schedule (it runs its own zoom line search), so its
  ``update`` needs ``value``, ``grad`` and ``value_fn`` keyword arguments; the
  others accept and ignore them.
  """
  checks.lookup(dict.fromkeys(OPTIMIZERS), name, "optimizer")
  shape = unit_schedule(schedule, total_steps, steps_per_epoch)
  lr = lambda count: learning_rate * shape(count)
  if name == "sgd":
    opt = optax.sgd(lr)
  elif name == "momentum":
    opt = optax.sgd(lr, momentum=momentum)
  elif name == "nesterov":
    opt = optax.sgd(lr, momentum=momentum, nesterov=True)
  elif name == "adam":
    opt = optax.adam(lr)
  elif name == "adamw":
    opt = optax.adamw(lr, weight_decay=weight_decay)
  else:
    opt = optax.lbfgs()
  return optax.with_extra_args_support(opt)
