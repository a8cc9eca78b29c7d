r"""The error decomposition of a linear classifier, measured term by term.

With R the 0–1 risk, R* the Bayes risk, F the linear classifiers
s = xW + b, f*_F the best of them, f_n the one trained to convergence on n
samples and f̃_n the same training stopped at a small budget (Bottou &
Bousquet, "The Tradeoffs of Large Scale Learning", NIPS 2007):

    E[R(f̃_n)] − R* = [R(f*_F) − R*]            approximation
                    + E[R(f_n) − R(f*_F)]       estimation
                    + E[R(f̃_n) − R(f_n)]       optimization

and R* itself is the Bayes error. How each term is measured:

- R*: the closed form, else the Monte Carlo mean of 1 − max_k P(k | x)
  over the test points;
- R(f*_F): the linear model trained to convergence on ``large_n`` (≥ 10⁶)
  fresh samples (minibatch Adam, ``large_steps`` steps, the iterates of the
  second half averaged), evaluated on the test sample. For a dataset of images (R* unknown) it is trained on the
  whole training split like f_n, and R(f*_F) is reported as one term,
  "approximation + Bayes";
- R(f_n): trained to convergence on the first n of ``seeds`` independent
  samples (for a dataset: the first n of ``seeds`` random permutations of
  its training split), for every n in ``sizes``; the expectation over
  training samples is the mean over seeds;
- R(f̃_n): the same runs stopped after ``budgets`` optimizer steps.

Training minimizes the surrogate risk, the multiclass hinge (``svm``) or the
softmax cross-entropy, plus λR(W), not the 0–1 risk. So f*_F is the best
linear classifier for the surrogate, not for the 0–1 risk: the measured
approximation term is an upper bound on the 0–1 approximation error (equal
to it when the surrogate's minimizer is the Bayes classifier, as for
softmax on ``gaussians``, whose log posterior ratios are linear). Every
output carries that caveat next to the number (``SURROGATE_CAVEAT``).

One program trains everything of a (dataset, loss): full-batch optax Adam
with the step size η_t = η / (1 + t/τ), which does not depend on the
number of steps, so stopping the run at step k gives exactly the k-step
run. The n of every configuration is a ``sample_weight`` mask over its
sample (weights 1 for the first n rows, 0 after), so that
``jit(vmap_seeds(vmap_sizes(scan(steps))))`` trains all seeds and all n at
once, and snapshots the weights at every budget; the numeric knobs (η, τ,
λ, Δ) are traced arrays.

Every risk is measured on one fresh test sample (``test_n`` points; for an
image dataset, its test split), shared by all classifiers of a dataset, so
that each term is the mean of paired per-example differences. Where R* is
known, the Bayes classifier's errors on that sample are a control variate
of known mean: R(f) is estimated as R* + (1/m) Σ_i (1[f(x_i) ≠ y_i] −
1[f_Bayes(x_i) ≠ y_i]), so R(f*_F) − R* is nonzero only where f*_F and the
Bayes classifier disagree, and the luck of the test sample, shared by all
classifiers, cancels (for a Monte Carlo R*, the Bayes term is the mean of
1 − max_k P(k | x_i) over the same points). Each term's standard error has
two parts: ``se_test``, std_i(d_i)/√m over the m
test points of d_i, the per-example difference averaged over seeds (for a
single risk at most 0.5/√m: 0.16 percentage points at m = 10⁵), and
``se_seeds``, the spread of the per-seed terms, std_s/√S; ``se`` combines
them as √(se_test² + se_seeds²). Because every term is a mean of
differences of the same per-example numbers, the terms add up to the total
excess risk E[R(f̃_n)] − R* for every row (``check_identity``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from jax.typing import ArrayLike

from linear_jax import budget as budget_lib
from linear_jax import checks, io, progress, regularizers
from linear_jax import losses as losses_lib
from linear_jax.data import distributions
from linear_jax.objective import objective
from linear_jax.workdir import workdir_lock

SYNTHETIC = tuple(distributions.DISTRIBUTIONS)
OUTPUTS = (
  "decomposition.json",
  "decomposition.md",
  "decomposition.png",
  "terms_vs_n.png",
)
SURROGATE_CAVEAT = (
  "trained on the {loss} surrogate risk + λR(W), not the 0–1 risk: the "
  "approximation term bounds the 0–1 approximation error from above"
)
#: Identity tolerance: terms are float64 means of at most ~10⁷ numbers in
#: [-1, 1], so their sum differs from the total by a few ulps of 1.
IDENTITY_TOLERANCE = 1e-12


@dataclasses.dataclass(frozen=True)
class DecompositionConfig:
  """What to measure. The defaults are the synthetic run of the binary.

  Attributes:
    datasets: names in ``distributions.DISTRIBUTIONS`` (R* known) or any
      name ``data.load_dataset`` takes (R* unknown), e.g.
      ``folder:/path/cifar10-jpeg.tar.gz``.
    losses: surrogate losses, names in ``linear_jax.LOSSES``.
    sizes: the training-set sizes n (a log grid).
    seeds: independent training samples per n.
    budgets: the small budgets of f̃_n, in optimizer steps (< ``steps``).
    steps: full-batch steps of the "to convergence" runs.
    large_n: samples that f*_F is trained on (synthetic datasets).
    large_steps, large_batch: minibatch Adam steps and batch size of f*_F
      on the large sample (synthetic datasets; on an image dataset f*_F is
      trained like f_n, ``steps`` full-batch steps on the training split).
    test_n: fresh test samples (synthetic datasets).
    learning_rate, decay_steps: η and τ of η_t = η / (1 + t/τ).
    reg, reg_strength: R(W) and λ.
    margin: Δ of the hinge losses.
    label_noise: η of ``parity``, ``ring`` and ``modes``.
    gaussian_label_noise: η of ``noisy_gaussians``.
    separation: ‖μ‖ of the two Gaussian classes.
    standardize: divide image features by their training std.
    validation_size: examples held out of an image dataset's training split
      and not trained on (None: the dataset's default), e.g. 1,000 for
      CIFAR-10's 49,000 training images.
    data_dir: cache folder for image datasets.
    seed: the base seed of every sample and permutation.
  """

  datasets: tuple[str, ...] = checks.option(
    SYNTHETIC,
    "distributions (gaussians, noisy_gaussians, parity, ring, "
    "modes: R* known) or datasets load_dataset takes (folder:PATH, digits, "
    "...: R* unknown)",
  )
  losses: tuple[str, ...] = checks.option(
    ("svm", "softmax"), "surrogate losses", choices=sorted(losses_lib.LOSSES)
  )
  sizes: tuple[int, ...] = checks.option(
    (16, 64, 256, 1024), "training-set sizes n", rule=checks.AT_LEAST_ONE
  )
  seeds: int = checks.option(
    8,
    "independent training samples per n (the seed spread is an error bar)",
    rule=checks.Range(2),
  )
  budgets: tuple[int, ...] = checks.option(
    (1, 8), "optimizer steps of f̃_n (< --steps)", rule=checks.AT_LEAST_ONE
  )
  steps: int = checks.option(
    300, "full-batch Adam steps of f_n", rule=checks.Range(2)
  )
  large_n: int = checks.option(
    1_000_000, "sample size of f*_F (synthetic)", rule=checks.AT_LEAST_ONE
  )
  large_steps: int = checks.option(
    2000, "minibatch steps of f*_F (synthetic)", rule=checks.Range(10)
  )
  large_batch: int = checks.option(
    1000, "minibatch size of f*_F (synthetic)", rule=checks.AT_LEAST_ONE
  )
  test_n: int = checks.option(
    100_000, "test samples (synthetic)", rule=checks.Range(2)
  )
  learning_rate: float = checks.option(
    0.1, "η of η_t = η / (1 + t/τ)", rule=checks.LEARNING_RATE
  )
  decay_steps: float = checks.option(
    20.0, "τ of η_t = η / (1 + t/τ)", rule=checks.POSITIVE
  )
  reg: str = checks.option(
    "l2", "regularizer R(W)", choices=sorted(regularizers.REGULARIZERS)
  )
  reg_strength: float = checks.option(1e-4, "λ", rule=checks.NONNEGATIVE)
  margin: float = checks.option(
    1.0, "Δ of the hinge losses", rule=checks.NONNEGATIVE
  )
  label_noise: float = checks.option(
    0.0, "label-noise rate of parity, ring, modes", rule=checks.UNIT_INTERVAL
  )
  gaussian_label_noise: float = checks.option(
    0.1, "label-noise rate of noisy_gaussians", rule=checks.UNIT_INTERVAL
  )
  separation: float = checks.option(
    1.0, "‖μ‖ of the Gaussian class means ±μ", rule=checks.NONNEGATIVE
  )
  standardize: bool = checks.option(True, "standardize image features")
  validation_size: int | None = checks.option(
    None,
    "examples held out of an image dataset's training split "
    "(default: the dataset's)",
    rule=checks.NONNEGATIVE,
  )
  data_dir: str | None = checks.option(None, "cache folder for image datasets")
  seed: int = checks.option(0, "base seed of every sample", rule=checks.SEED)
  memory_budget: str | None = checks.option(None, budget_lib.FLAG_HELP)

  def check(self) -> "DecompositionConfig":
    """Raises ``LinearJaxError`` naming the first bad setting: each field's
    rule, then what relates fields.
    """
    checks.check_options(self)
    budget_lib.memory_budget(self.memory_budget)  # a size, if given
    for loss in self.losses:
      losses_lib.get_loss(loss)
    if not self.datasets or not self.losses or not self.sizes:
      raise checks.LinearJaxError(
        "give at least one dataset, one loss and one size"
      )
    if not self.budgets or max(self.budgets) >= self.steps:
      raise checks.LinearJaxError(
        f"budgets must lie in [1, steps={self.steps}), got {self.budgets}; "
        "raise --steps or lower --budgets"
      )
    if self.large_batch > self.large_n:
      raise checks.LinearJaxError(
        f"large_batch must be ≤ large_n, got {self.large_batch} > "
        f"{self.large_n}"
      )
    return self


# ---------------------------------------------------------------- training


def _snapshot_steps(steps: int, budgets) -> tuple:
  """Sorted steps at which weights are kept: budgets, 0.9·steps, steps."""
  return tuple(sorted(set(budgets) | {steps - max(steps // 10, 1), steps}))


def _zero_params(num_features: int, num_classes: int, dtype) -> dict:
  return {
    "W": jnp.zeros((num_features, num_classes), dtype),
    "b": jnp.zeros((num_classes,), dtype),
  }


def _adam(hparams: dict) -> optax.GradientTransformation:
  """Adam at η_t = η / (1 + t/τ): a schedule that does not depend on the
  number of steps, so a run stopped at step k is the k-step run.
  """
  return optax.adam(
    lambda t: hparams["learning_rate"] / (1.0 + t / hparams["decay_steps"])
  )


def _run_to_snapshots(step, carry, snapshots: tuple):
  """Applies ``step(t, carry)`` for t < snapshots[-1]; returns the params of
  ``carry[0]`` after snapshots[0], snapshots[1], ... steps, stacked.

  One loop body (a ``fori_loop`` between consecutive snapshots inside a
  ``scan`` over them), so XLA compiles the step once however many
  snapshots there are.
  """
  ends = jnp.asarray(snapshots, jnp.int32)
  starts = jnp.concatenate([jnp.zeros(1, jnp.int32), ends[:-1]])

  def segment(carry, bounds):
    carry = jax.lax.fori_loop(bounds[0], bounds[1], step, carry)
    return carry, carry[0]

  return jax.lax.scan(segment, carry, jnp.stack([starts, ends], 1))[1]


def _objective_fn(x, y, weights, hparams, loss: str, reg: str):
  """Params -> Σ w_i L_i / Σ w_i + λR(W) on (x, y)."""
  options = losses_lib.loss_options(loss, margin=hparams["margin"])
  return lambda params: objective(
    params,
    x,
    y,
    loss=loss,
    reg=reg,
    reg_strength=hparams["reg_strength"],
    sample_weight=weights,
    **options,
  )


@functools.partial(
  jax.jit, static_argnames=("loss", "reg", "snapshots", "num_classes")
)
def fit_prefixes(
  x: ArrayLike,
  y: ArrayLike,
  masks: ArrayLike,
  hparams: dict,
  *,
  loss: str,
  reg: str,
  snapshots: tuple,
  num_classes: int,
) -> dict:
  """Trains one linear model per (sample, mask) and keeps snapshots.

  Each model minimizes the weighted objective
  L(W, b) = Σ_i w_i L_i / Σ_i w_i + λR(W) over its sample with full-batch
  Adam at η_t = η / (1 + t/τ), from zeros; ``masks`` of 1s on the first n
  rows make it the empirical risk of those n examples.

  Args:
    x: ``[B, N, D]`` B independent samples.
    y: ``[B, N]`` int labels in [0, C).
    masks: ``[G, N]`` sample weights, shared by the B samples.
    hparams: ``learning_rate`` η, ``decay_steps`` τ, ``reg_strength`` λ,
      ``margin`` Δ: scalar arrays.
    loss: a name in ``linear_jax.LOSSES`` (static).
    reg: a name in ``linear_jax.REGULARIZERS`` (static).
    snapshots: increasing step counts at which to keep the weights (static).
    num_classes: C (static).

  Returns:
    ``{"W": [B, G, P, D, C], "b": [B, G, P, C], "objective": [B, G, P]}``
    with P = len(snapshots).
  """

  def fit_one(x, y, weights):
    value = _objective_fn(x, y, weights, hparams, loss, reg)
    opt = _adam(hparams)
    grad = jax.grad(value)

    def step(_, carry):
      params, state = carry
      updates, state = opt.update(grad(params), state, params)
      return optax.apply_updates(params, updates), state

    params = _zero_params(x.shape[1], num_classes, x.dtype)
    kept = _run_to_snapshots(step, (params, opt.init(params)), snapshots)
    return {**kept, "objective": jax.vmap(value)(kept)}

  per_mask = jax.vmap(fit_one, in_axes=(None, None, 0))
  return jax.vmap(per_mask, in_axes=(0, 0, None))(x, y, masks)


@functools.partial(
  jax.jit, static_argnames=("loss", "reg", "steps", "batch_size", "num_classes")
)
def fit_large(
  x: ArrayLike,
  y: ArrayLike,
  hparams: dict,
  *,
  loss: str,
  reg: str,
  steps: int,
  batch_size: int,
  num_classes: int,
) -> dict:
  """f*_F: minibatch Adam over a very large iid sample, iterates averaged.

  Step t uses rows [t·B, (t+1)·B) modulo the sample (the sample is iid, so
  its order is already random), at η_t = η / (1 + t/τ), from zeros; the
  result is the mean of the iterates of the second half of the steps.

  Args:
    x: ``[N, D]`` the sample.
    y: ``[N]`` its labels.
    hparams: as ``fit_prefixes``.
    loss: as ``fit_prefixes`` (static).
    reg: as ``fit_prefixes`` (static).
    num_classes: C (static).
    steps: minibatch steps (static).
    batch_size: B ≤ N (static).

  Returns:
    ``{"W": [D, C], "b": [C], "objective": [2]}``: the averaged weights and
    the full-sample objective of the average at 90 % of the steps and at the
    end.
  """
  x, y = jnp.asarray(x), jnp.asarray(y)  # tracers already, under jit
  n = x.shape[0]
  num_batches = n // batch_size
  opt = _adam(hparams)
  average_from = steps // 2

  def step(t, carry):
    average, params, state = carry
    start = (t % num_batches) * batch_size
    xb = jax.lax.dynamic_slice_in_dim(x, start, batch_size)
    yb = jax.lax.dynamic_slice_in_dim(y, start, batch_size)
    grad = jax.grad(_objective_fn(xb, yb, None, hparams, loss, reg))(params)
    updates, state = opt.update(grad, state, params)
    params = optax.apply_updates(params, updates)
    # Polyak averaging over the second half of the steps: the minibatch
    # noise of the last iterates averages out.
    weight = jnp.where(
      t >= average_from, 1.0 / jnp.maximum(t - average_from + 1, 1), 1.0
    )
    average = jax.tree.map(lambda a, p: a + weight * (p - a), average, params)
    return average, params, state

  params = _zero_params(x.shape[1], num_classes, x.dtype)
  kept = _run_to_snapshots(
    step,
    (params, params, opt.init(params)),
    (steps - max(steps // 10, 1), steps),
  )
  value = _objective_fn(x, y, None, hparams, loss, reg)
  return {
    "W": kept["W"][-1],
    "b": kept["b"][-1],
    "objective": jax.lax.map(value, kept),
  }


@jax.jit
def misclassified(
  w: ArrayLike, b: ArrayLike, x: ArrayLike, y: ArrayLike
) -> jax.Array:
  """1[argmax_j s_j ≠ y_i] for every classifier and test point.

  Args:
    w: ``[M, D, C]`` weights of M classifiers.
    b: ``[M, C]`` their biases.
    x: ``[m, D]`` test points.
    y: ``[m]`` their labels.

  Returns:
    ``[M, m]`` bool.
  """

  def one(wb):
    return jnp.argmax(x @ wb[0] + wb[1], axis=-1) != y

  return jax.lax.map(one, (w, b))


# ---------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
  """The samples of one dataset.

  Attributes:
    name: the dataset's name.
    blocks_x: ``[S, n_max, D]`` one training sample per seed; the first n
      rows of each are its sample of size n.
    blocks_y: ``[S, n_max]``.
    large_x, large_y: the sample f*_F is trained on ``[N_F, D]``, ``[N_F]``.
    test_x, test_y: the test sample ``[m, D]``, ``[m]``.
    num_classes: C.
    bayes_wrong: ``[m]`` 1[argmax_k P(k | x_i) ≠ y_i], the Bayes
      classifier's errors on the test sample; None when R* is unknown.
    bayes_level: ``[m]`` the closed-form R* repeated, or 1 − max_k P(k | x_i)
      for a Monte Carlo R*; None when unknown.
    bayes_risk: R* (closed form, or Monte Carlo over the test points), or
      None when unknown.
    synthetic: whether the samples come from a ``Distribution``.
  """

  name: str
  blocks_x: np.ndarray
  blocks_y: np.ndarray
  large_x: np.ndarray
  large_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray
  num_classes: int
  bayes_wrong: np.ndarray | None
  bayes_level: np.ndarray | None
  bayes_risk: distributions.BayesRisk | None
  synthetic: bool


def _stream(config: DecompositionConfig, name: str, *role: int) -> list:
  """A seed sequence per (base seed, dataset, role, ...), stable across lists."""
  return [config.seed, zlib.crc32(name.encode()), *role]


def make_distribution(
  name: str, config: DecompositionConfig
) -> distributions.Distribution:
  """The configured ``Distribution`` of a synthetic dataset name."""
  if name == "gaussians":
    return distributions.gaussians(separation=config.separation)
  if name == "noisy_gaussians":
    return distributions.noisy_gaussians(
      separation=config.separation, label_noise=config.gaussian_label_noise
    )
  return distributions.get_distribution(name, label_noise=config.label_noise)


def synthetic_problem(name: str, config: DecompositionConfig) -> Problem:
  """Independent samples of a distribution: seeds, large, test."""
  dist = make_distribution(name, config)
  n_max = max(config.sizes)
  blocks = [
    dist.sample(n_max, _stream(config, name, 0, s)) for s in range(config.seeds)
  ]
  large_x, large_y = dist.sample(config.large_n, _stream(config, name, 1))
  test_x, test_y = dist.sample(config.test_n, _stream(config, name, 2))
  closed_form = dist.bayes_risk_closed_form
  if closed_form is None:
    level = dist.conditional_bayes_error(test_x)
    bayes_risk = distributions.BayesRisk(
      float(level.mean()),
      float(level.std(ddof=1) / math.sqrt(len(level))),
      f"monte carlo ({len(level)} test points)",
    )
  else:
    level = np.full(len(test_y), closed_form)
    bayes_risk = distributions.BayesRisk(closed_form, 0.0, "closed form")
  return Problem(
    name,
    np.stack([b[0] for b in blocks]),
    np.stack([b[1] for b in blocks]),
    large_x,
    large_y,
    test_x,
    test_y,
    dist.num_classes,
    dist.bayes_predict(test_x) != test_y,
    level,
    bayes_risk,
    True,
  )


def dataset_problem(name: str, config: DecompositionConfig) -> Problem:
  """A loaded dataset (R* unknown): f*_F on its whole training split,
  f_n on the first n of a random permutation per seed, its test split.
  """
  from linear_jax import data  # pylint: disable=g-import-not-at-top

  with budget_lib.limited(config.memory_budget):
    ds = data.load_dataset(
      name,
      data_dir=config.data_dir,
      seed=config.seed,
      standardize=config.standardize,
      validation_size=config.validation_size,
    )
  n_train = len(ds.y_train)
  n_max = max(config.sizes)
  if n_max > n_train:
    raise checks.LinearJaxError(
      f"sizes go up to {n_max} but {name} has {n_train} training examples; "
      "lower --sizes"
    )
  order = [
    np.random.default_rng(_stream(config, name, 0, s)).permutation(n_train)[
      :n_max
    ]
    for s in range(config.seeds)
  ]
  return Problem(
    name,
    np.stack([ds.x_train[o] for o in order]),
    np.stack([ds.y_train[o] for o in order]),
    ds.x_train,
    ds.y_train,
    ds.x_test,
    ds.y_test,
    ds.num_classes,
    None,
    None,
    None,
    False,
  )


def load_problem(name: str, config: DecompositionConfig) -> Problem:
  """A distribution's ``synthetic_problem``, or else a ``dataset_problem``."""
  if name in distributions.DISTRIBUTIONS:
    return synthetic_problem(name, config)
  return dataset_problem(name, config)


# ---------------------------------------------------------------- terms


def _mean_and_errors(d: np.ndarray) -> tuple[float, float, float]:
  """Mean of per-seed per-example differences ``[S, m]`` (or ``[m]``) and its
  (se_test, se_seeds).
  """
  d = np.atleast_2d(d)
  per_example = d.mean(axis=0)
  se_test = per_example.std(ddof=1) / math.sqrt(d.shape[1])
  se_seeds = (
    d.mean(axis=1).std(ddof=1) / math.sqrt(d.shape[0])
    if d.shape[0] > 1
    else 0.0
  )
  return float(per_example.mean()), float(se_test), float(se_seeds)


def _put(row: dict, term: str, d: np.ndarray | None) -> None:
  if d is None:
    row[term] = row[f"{term}_se"] = row[f"{term}_se_test"] = None
    row[f"{term}_se_seeds"] = None
    return
  value, se_test, se_seeds = _mean_and_errors(d)
  row.update(
    {
      term: value,
      f"{term}_se": math.hypot(se_test, se_seeds),
      f"{term}_se_test": se_test,
      f"{term}_se_seeds": se_seeds,
    }
  )


def decompose(
  wrong_large: np.ndarray,
  wrong: np.ndarray,
  bayes_wrong: np.ndarray | None,
  bayes_level: np.ndarray | None,
  *,
  sizes,
  budgets,
) -> list[dict]:
  """The four terms for every (n, budget) from per-example errors.

  Args:
    wrong_large: ``[m]`` 1[f*_F(x_i) ≠ y_i].
    wrong: ``[S, G, P, m]`` 1[f(x_i) ≠ y_i] of the run of seed s on the
      first ``sizes[g]`` examples at snapshot p; snapshots ``budgets`` then
      the converged run last.
    bayes_wrong: ``[m]`` 1[Bayes classifier wrong at x_i], or None (R*
      unknown).
    bayes_level: ``[m]`` with mean R* (``Problem.bayes_level``), or None.
    sizes: the G sizes n.
    budgets: the budgets (the first len(budgets) snapshots).

  Returns:
    One dict per (n, budget): ``n``, ``budget``, and for each of
    ``bayes, approximation, approx_plus_bayes, estimation, optimization,
    total_excess, risk`` the value with ``_se``, ``_se_test``, ``_se_seeds``
    (None where R* is unknown).
  """
  f_large = wrong_large.astype(np.float64)
  runs = wrong.astype(np.float64)
  b = None
  if bayes_wrong is not None:
    # Control variate: every per-example error is shifted by the same
    # b_i − 1[Bayes wrong at x_i], whose mean is 0 in expectation.
    b = np.asarray(bayes_level, np.float64)
    shift = b - np.asarray(bayes_wrong, np.float64)
    f_large = f_large + shift
    runs = runs + shift
  rows = []
  for g, n in enumerate(sizes):
    converged = runs[:, g, -1]
    for p, budget in enumerate(budgets):
      stopped = runs[:, g, p]
      row = {"n": int(n), "budget": int(budget)}
      _put(row, "bayes", b)
      _put(row, "approximation", None if b is None else f_large - b)
      _put(row, "approx_plus_bayes", f_large)
      _put(row, "estimation", converged - f_large)
      _put(row, "optimization", stopped - converged)
      _put(row, "total_excess", None if b is None else stopped - b)
      _put(row, "risk", stopped)
      rows.append(row)
  return rows


def check_identity(rows: list[dict]) -> float:
  """The largest |sum of terms − total| over rows; raises above tolerance.

  Known R*: approximation + estimation + optimization = total excess, and
  Bayes + total excess = R(f̃_n). Unknown R*: (approximation + Bayes) +
  estimation + optimization = R(f̃_n).
  """
  worst = 0.0
  for row in rows:
    gaps = [
      row["approx_plus_bayes"]
      + row["estimation"]
      + row["optimization"]
      - row["risk"]
    ]
    if row["bayes"] is not None:
      gaps.append(
        row["approximation"]
        + row["estimation"]
        + row["optimization"]
        - row["total_excess"]
      )
      gaps.append(row["bayes"] + row["total_excess"] - row["risk"])
    worst = max(worst, *map(abs, gaps))
  if worst > IDENTITY_TOLERANCE:
    raise AssertionError(
      f"error terms do not add up to the total: off by {worst:.3g}"
    )
  return worst


# ---------------------------------------------------------------- driver


def _hparams(config: DecompositionConfig) -> dict:
  return {
    k: jnp.float32(getattr(config, k))
    for k in ("learning_rate", "decay_steps", "reg_strength", "margin")
  }


def measure_problem(
  problem: Problem, loss: str, config: DecompositionConfig
) -> dict:
  """Trains f*_F and every f_n, f̃_n of one (dataset, loss) and decomposes.

  Returns:
    ``{"dataset", "loss", "rows", "risk_large", "risk_large_se",
    "convergence_large", "convergence_by_n"}``; the convergence figures are
    the relative change of the objective over the last tenth of the steps,
    for f*_F and (the largest over seeds) for each n.
  """
  snapshots = _snapshot_steps(config.steps, config.budgets)
  keep = [snapshots.index(b) for b in config.budgets] + [len(snapshots) - 1]
  kwargs = dict(
    loss=loss,
    reg=config.reg,
    snapshots=snapshots,
    num_classes=problem.num_classes,
  )
  hp = _hparams(config)
  n_max = problem.blocks_x.shape[1]
  masks = (
    np.arange(n_max)[None, :] < np.asarray(config.sizes)[:, None]
  ).astype(np.float32)

  if problem.synthetic:
    large = fit_large(
      problem.large_x,
      problem.large_y,
      hp,
      loss=loss,
      reg=config.reg,
      steps=config.large_steps,
      batch_size=config.large_batch,
      num_classes=problem.num_classes,
    )
    how = f"{config.large_steps} minibatch steps of {config.large_batch}"
  else:
    large = fit_prefixes(
      problem.large_x[None],
      problem.large_y[None],
      np.ones((1, len(problem.large_y)), np.float32),
      hp,
      **kwargs,
    )
    large = jax.tree.map(lambda a: a[0, 0, -2:], large)
    large = {
      "W": large["W"][-1],
      "b": large["b"][-1],
      "objective": large["objective"],
    }
    how = f"{config.steps} full-batch steps"
  jax.block_until_ready(large)
  logging.info(
    "%s/%s: f*_F trained on %d examples, %s",
    problem.name,
    loss,
    len(problem.large_y),
    how,
  )
  runs = fit_prefixes(problem.blocks_x, problem.blocks_y, masks, hp, **kwargs)
  jax.block_until_ready(runs)
  logging.info(
    "%s/%s: %d seeds x %d sizes trained in one program",
    problem.name,
    loss,
    config.seeds,
    len(config.sizes),
  )

  w = runs["W"][:, :, np.asarray(keep)]
  b = runs["b"][:, :, np.asarray(keep)]
  shape = w.shape[:3]
  wrong = misclassified(
    jnp.concatenate([large["W"][None], w.reshape((-1,) + w.shape[3:])]),
    jnp.concatenate([large["b"][None], b.reshape((-1,) + b.shape[3:])]),
    problem.test_x,
    problem.test_y,
  )
  wrong = np.asarray(wrong)
  rows = decompose(
    wrong[0],
    wrong[1:].reshape(shape + wrong.shape[-1:]),
    problem.bayes_wrong,
    problem.bayes_level,
    sizes=config.sizes,
    budgets=config.budgets,
  )
  check_identity(rows)

  def change(obj):  # relative objective change over the last tenth
    obj = np.asarray(obj, np.float64)
    return np.abs(obj[..., -2] - obj[..., -1]) / np.maximum(
      np.abs(obj[..., -1]), 1e-12
    )

  caveat = SURROGATE_CAVEAT.format(loss=loss)
  for row in rows:
    row.update(dataset=problem.name, loss=loss, caveat=caveat)
  return {
    "dataset": problem.name,
    "loss": loss,
    "rows": rows,
    "risk_large": rows[0]["approx_plus_bayes"],
    "risk_large_se": rows[0]["approx_plus_bayes_se"],
    "convergence_large": float(change(large["objective"])),
    "convergence_by_n": [
      float(c) for c in change(runs["objective"]).max(axis=0)
    ],
  }


def run(config: DecompositionConfig) -> dict:
  """Measures every (dataset, loss) of ``config``.

  Returns:
    ``{"config", "datasets": {name: {"bayes_method", "train_large", "test"}},
    "results": [measure_problem(...) per dataset and loss], "rows": all rows,
    "max_risk_se", "identity_residual", "seconds", "caveat"}``.
  """
  config.check()
  bar = progress.Progress(
    "(dataset, loss)", len(config.datasets) * len(config.losses)
  )
  datasets, results = {}, []
  for name in config.datasets:
    problem = load_problem(name, config)
    known = problem.bayes_risk
    logging.info(
      "%s: sampled %d seeds x %d, %d for f*_F, %d test (R*: %s)",
      name,
      config.seeds,
      problem.blocks_x.shape[1],
      len(problem.large_y),
      len(problem.test_y),
      "unknown" if known is None else known.method,
    )
    datasets[name] = {
      "bayes_method": "unknown" if known is None else known.method,
      "bayes_risk": None if known is None else known.value,
      "bayes_risk_se": None if known is None else known.se,
      "train_large": len(problem.large_y),
      "test": len(problem.test_y),
    }
    for loss in config.losses:
      results.append(measure_problem(problem, loss, config))
      bar.update(len(results), note=f"{name}/{loss}")
  bar.close()
  rows = [row for result in results for row in result["rows"]]
  max_risk_se = max(row["risk_se_test"] for row in rows)
  return {
    "config": dataclasses.asdict(config),
    "datasets": datasets,
    "results": results,
    "rows": rows,
    "max_risk_se": max_risk_se,
    "identity_residual": check_identity(rows),
    "seconds": bar.elapsed,
    "caveat": SURROGATE_CAVEAT.format(loss="named"),
  }


# ---------------------------------------------------------------- outputs


def reference_rows(result: dict) -> list[dict]:
  """One row per (dataset, loss): the middle n of the grid, smallest budget."""
  sizes = sorted(result["config"]["sizes"])
  n_ref = sizes[(len(sizes) - 1) // 2]
  budget = min(result["config"]["budgets"])
  return [
    r for r in result["rows"] if r["n"] == n_ref and r["budget"] == budget
  ]


def _pct(row: dict, term: str) -> str:
  value = row[term]
  if value is None:
    return "–"
  return f"{100 * value:.2f} ± {100 * row[term + '_se']:.2f}"


TABLE_HEADER = (
  "| dataset | loss | n | budget | R* (Bayes) | approximation† | "
  "estimation | optimization | total excess | R(f̃_n) |\n"
  "|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(row: dict) -> str:
  """One markdown row, percentages ± standard errors; approximation + Bayes
  in the approximation column (marked "A+B") where R* is unknown.
  """
  approx = (
    _pct(row, "approximation")
    if row["bayes"] is not None
    else f"A+B {_pct(row, 'approx_plus_bayes')}"
  )
  return (
    f"| {row['dataset']} | {row['loss']} | {row['n']} | {row['budget']} | "
    f"{_pct(row, 'bayes')} | {approx} | {_pct(row, 'estimation')} | "
    f"{_pct(row, 'optimization')} | {_pct(row, 'total_excess')} | "
    f"{_pct(row, 'risk')} |"
  )


def format_markdown(result: dict) -> str:
  """``decomposition.md``: the reference table, then every row per dataset."""
  cfg = result["config"]
  lines = [
    "# Error decomposition of linear classifiers",
    "",
    "E[R(f̃_n)] − R* = approximation + estimation + optimization "
    "(Bottou & Bousquet 2007), 0–1 risks in percent ± one standard error "
    f"(test sample and seed spread; the largest standard error of a single "
    f"risk from the test sample is {100 * result['max_risk_se']:.3f} "
    "percentage points). n: training examples; budget: optimizer steps of "
    f"f̃_n; f_n: {cfg['steps']} steps of full-batch Adam, "
    f"η = {cfg['learning_rate']:g}/(1 + t/{cfg['decay_steps']:g}), "
    f"λ = {cfg['reg_strength']:g} ({cfg['reg']}); {cfg['seeds']} seeds.",
    "",
    "Where R* is known, each risk is R* plus its paired difference from "
    "the Bayes classifier on the test sample (a control variate). † "
    + SURROGATE_CAVEAT.format(loss="named")
    + ". Where R* is unknown "
    "(A+B) the column holds R(f*_F) = approximation + Bayes.",
    "",
    "| dataset | R* | R* method | f*_F trained on | test points |",
    "|---|---|---|---|---|",
  ]
  for name, info in result["datasets"].items():
    risk = (
      "–"
      if info["bayes_risk"] is None
      else f"{100 * info['bayes_risk']:.2f} ± {100 * info['bayes_risk_se']:.2f}"
    )
    lines.append(
      f"| {name} | {risk} | {info['bayes_method']} | "
      f"{info['train_large']} | {info['test']} |"
    )
  lines += ["", "## Middle n, smallest budget", "", TABLE_HEADER]
  lines += [table_row(r) for r in reference_rows(result)]
  for name in result["datasets"]:
    lines += ["", f"## {name}", "", TABLE_HEADER]
    lines += [table_row(r) for r in result["rows"] if r["dataset"] == name]
  lines += [
    "",
    "## Convergence",
    "",
    "Relative change of the objective over the last tenth of the "
    "steps: f*_F, then f_n for each n (largest over seeds).",
    "",
    "| dataset | loss | f*_F | "
    + " | ".join(f"n={n}" for n in cfg["sizes"])
    + " |",
    "|---|---|---|" + "---|" * len(cfg["sizes"]),
  ]
  lines += [
    f"| {r['dataset']} | {r['loss']} | {r['convergence_large']:.1e} | "
    + " | ".join(f"{c:.1e}" for c in r["convergence_by_n"])
    + " |"
    for r in result["results"]
  ]
  lines += [
    "",
    f"Terms add up to the total to {result['identity_residual']:.1e}.",
    f"Wall time {result['seconds']:.1f} s.",
    "",
  ]
  return "\n".join(lines)


def check_workdir(workdir: str) -> None:
  """Creates ``workdir``; refuses a file there or an earlier run's outputs."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise checks.LinearJaxError(
      f"--workdir {workdir} is a file, not a folder; choose another --workdir"
    )
  for name in OUTPUTS:
    path = os.path.join(workdir, name)
    if os.path.exists(path):
      raise checks.LinearJaxError(
        f"{path} exists; choose a new --workdir (nothing was overwritten)"
      )
  os.makedirs(workdir, exist_ok=True)


def write_outputs(result: dict, workdir: str) -> dict:
  """Writes ``OUTPUTS`` to ``workdir`` atomically; returns their paths."""
  from linear_jax import plots  # pylint: disable=g-import-not-at-top

  paths = {name: os.path.join(workdir, name) for name in OUTPUTS}
  io.write_json(paths["decomposition.json"], result)
  io.atomic_write(paths["decomposition.md"], format_markdown(result))
  plots.plot_decomposition_bars(
    reference_rows(result), paths["decomposition.png"]
  )
  plots.plot_terms_vs_n(
    result["rows"], min(result["config"]["budgets"]), paths["terms_vs_n.png"]
  )
  return paths


def run_experiment(config: DecompositionConfig, workdir: str) -> dict:
  """``check_workdir``, ``run``, ``write_outputs``: what the binary calls,
  holding ``workdir``'s lock (``linear_jax.workdir``) throughout.
  """
  config.check()
  with workdir_lock(workdir):
    check_workdir(workdir)
    result = run(config)
    result["outputs"] = write_outputs(result, workdir)
  return result
