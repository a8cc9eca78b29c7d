"""linear_jax: the lecture's linear classifiers as pure, verified JAX functions.

One layout everywhere:

- examples ``x``: ``[N, D]`` float, one flattened example per row;
- labels ``y``: ``[N]`` int, in [0, C);
- parameters ``params = {"W": [D, C], "b": [C]}``;
- scores s = f(x; W, b) = xW + b: ``[N, C]``.

Losses map ``(scores, labels)`` to per-example losses ``[N]`` and never
reduce; ``objective`` is the one place that reduces and adds λR(W).
"""

from linear_jax.gradcheck import check_gradient
from linear_jax.gradcheck import max_relative_error
from linear_jax.gradcheck import numerical_gradient
from linear_jax.gradients import SCORE_GRADIENTS
from linear_jax.gradients import objective_gradient
from linear_jax.losses import LOSSES
from linear_jax.losses import crammer_singer_hinge
from linear_jax.losses import get_loss
from linear_jax.losses import multiclass_hinge
from linear_jax.losses import softmax_cross_entropy
from linear_jax.losses import softmax_probabilities
from linear_jax.losses import squared_multiclass_hinge
from linear_jax.objective import objective
from linear_jax.objective import objective_terms
from linear_jax.regularizers import REGULARIZERS
from linear_jax.regularizers import get_regularizer
from linear_jax.regularizers import l1_penalty
from linear_jax.regularizers import l2_penalty
from linear_jax.scores import add_bias_column
from linear_jax.scores import drop_bias_column
from linear_jax.scores import fold_bias
from linear_jax.scores import init_params
from linear_jax.scores import linear_scores
from linear_jax.scores import predict
from linear_jax.scores import unfold_bias
from linear_jax.checks import LinearJaxError

__version__ = "0.1.0"
