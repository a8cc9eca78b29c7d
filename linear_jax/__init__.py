"""linear_jax: the lecture's linear classifiers as pure, verified JAX functions.

One layout everywhere:

- examples ``x``: ``[N, D]`` float, one flattened example per row;
- labels ``y``: ``[N]`` int, in [0, C);
- parameters ``params = {"W": [D, C], "b": [C]}``;
- scores s = f(x; W, b) = xW + b: ``[N, C]``.

Losses map ``(scores, labels)`` to per-example losses ``[N]`` and never
reduce; ``objective`` is the one place that reduces and adds λR(W).
"""

from linear_jax.checks import LinearJaxError
from linear_jax.gradcheck import (
  check_gradient,
  max_relative_error,
  numerical_gradient,
)
from linear_jax.gradients import SCORE_GRADIENTS, objective_gradient
from linear_jax.losses import (
  LOSSES,
  crammer_singer_hinge,
  get_loss,
  multiclass_hinge,
  softmax_cross_entropy,
  softmax_probabilities,
  squared_multiclass_hinge,
)
from linear_jax.objective import objective, objective_terms
from linear_jax.regularizers import (
  REGULARIZERS,
  get_regularizer,
  l1_penalty,
  l2_penalty,
)
from linear_jax.scores import (
  add_bias_column,
  drop_bias_column,
  fold_bias,
  init_params,
  linear_scores,
  predict,
  unfold_bias,
)

__version__ = "0.1.0"

__all__ = [
  "__version__",
  "add_bias_column",
  "check_gradient",
  "crammer_singer_hinge",
  "drop_bias_column",
  "fold_bias",
  "get_loss",
  "get_regularizer",
  "init_params",
  "l1_penalty",
  "l2_penalty",
  "linear_scores",
  "LinearJaxError",
  "LOSSES",
  "max_relative_error",
  "multiclass_hinge",
  "numerical_gradient",
  "objective",
  "objective_gradient",
  "objective_terms",
  "predict",
  "REGULARIZERS",
  "SCORE_GRADIENTS",
  "softmax_cross_entropy",
  "softmax_probabilities",
  "squared_multiclass_hinge",
  "unfold_bias",
]
