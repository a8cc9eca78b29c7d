r"""Measure the error decomposition of linear classifiers: Bayes, approximation,
estimation, optimization (Bottou & Bousquet 2007).

  python -m experiments.error_decomposition --workdir=runs/decomposition
  python -m experiments.error_decomposition \
      --flagfile=experiments/flags/decomposition_cifar10.flags

Writes decomposition.json, decomposition.md (every term with its standard
error, per dataset, loss, n and budget), decomposition.png (one stacked bar
per dataset and loss) and terms_vs_n.png to --workdir, and refuses a workdir
that holds them already. See linear_jax/decomposition.py for the method.
"""

from __future__ import annotations

from absl import flags

from experiments import cli


flags.DEFINE_list("datasets", "gaussians,noisy_gaussians,parity,ring,modes",
                  "distributions (gaussians, noisy_gaussians, parity, ring, "
                  "modes: R* known) or datasets load_dataset takes "
                  "(folder:PATH, digits, ...: R* unknown)")
flags.DEFINE_list("losses", "svm,softmax", "surrogate losses")
flags.DEFINE_list("sizes", "16,64,256,1024", "training-set sizes n")
flags.DEFINE_integer("seeds", 8, "independent training samples per n")
flags.DEFINE_list("budgets", "1,8", "optimizer steps of f̃_n (< --steps)")
flags.DEFINE_integer("steps", 300, "full-batch Adam steps of f_n")
flags.DEFINE_integer("large_n", 1_000_000, "sample size of f*_F (synthetic)")
flags.DEFINE_integer("large_steps", 2000, "minibatch steps of f*_F (synthetic)")
flags.DEFINE_integer("large_batch", 1000, "minibatch size of f*_F (synthetic)")
flags.DEFINE_integer("test_n", 100_000, "test samples (synthetic)")
flags.DEFINE_float("learning_rate", 0.1, "η of η_t = η / (1 + t/τ)")
flags.DEFINE_float("decay_steps", 20.0, "τ of η_t = η / (1 + t/τ)")
flags.DEFINE_string("reg", "l2", "regularizer R(W)")
flags.DEFINE_float("reg_strength", 1e-4, "λ ≥ 0")
flags.DEFINE_float("margin", 1.0, "Δ of the hinge losses")
flags.DEFINE_float("label_noise", 0.0, "label-noise rate of parity, ring, modes")
flags.DEFINE_float("gaussian_label_noise", 0.1,
                   "label-noise rate of noisy_gaussians")
flags.DEFINE_float("separation", 1.0, "‖μ‖ of the Gaussian class means ±μ")
flags.DEFINE_bool("standardize", True, "standardize image features")
flags.DEFINE_integer("validation_size", None, "examples held out of an image "
                     "dataset's training split (default: the dataset's)")
flags.DEFINE_string("data_dir", None, "cache folder for image datasets")
flags.DEFINE_integer("seed", 0, "base seed of every sample")
flags.DEFINE_string("workdir", None, "output folder (must not hold outputs)")
flags.mark_flag_as_required("workdir")

FLAGS = flags.FLAGS


def _ints(values, name):
  from linear_jax.checks import LinearJaxError
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise LinearJaxError(
        f"--{name} must be a comma list of integers, got {','.join(values)}"
    ) from None


def main(argv):
  del argv
  from linear_jax import decomposition
  names = {"datasets", "losses", "seeds", "steps", "large_n", "large_steps",
           "large_batch", "test_n", "learning_rate", "decay_steps", "reg",
           "reg_strength", "margin", "label_noise", "gaussian_label_noise",
           "separation", "standardize", "validation_size", "data_dir", "seed"}
  values = {name: FLAGS[name].value for name in names}
  values["datasets"] = tuple(values["datasets"])
  values["losses"] = tuple(values["losses"])
  config = decomposition.DecompositionConfig(
      sizes=_ints(FLAGS.sizes, "sizes"), budgets=_ints(FLAGS.budgets, "budgets"),
      **values)
  result = decomposition.run_experiment(config, FLAGS.workdir)
  print(decomposition.TABLE_HEADER)
  for row in decomposition.reference_rows(result):
    print(decomposition.table_row(row))
  print(f"{result['seconds']:.1f} s -> {FLAGS.workdir}")


if __name__ == "__main__":
  cli.start(main)
