"""A trained model as a pure function: raw examples in, scores and labels out.

``load_model(workdir)`` reads a training run's ``checkpoint.npz`` (written by
``linear_jax.train.train_and_evaluate``) and returns a ``Model``: the params
(the best on validation when early stopping kept them, else the last), the
preprocessing fitted on the training split, and the class names. Nothing
else is needed: not the training data, not the run's settings.

``Model.scores`` is a pure, jittable function of raw examples ``x_raw``
``[N, ...]`` (any numeric dtype, flattened to ``[N, D]``):

    s = ((x_raw − μ) / σ) W + b        (μ, σ: the saved statistics, if any)

computed as ``PreprocessStats.apply`` and ``linear_scores`` compute it in
training, so predictions equal those behind the run's reported accuracy.

Sparse inputs (``scipy.sparse`` ``[N, D']``, svmlight files, scipy ``.npz``
files) stay sparse: preprocessed on the host (``PreprocessStats.apply``),
scored on the device in row blocks (``linear_jax.sparse``). Inputs with
fewer features than training (D' < D) are padded with zero columns; more
are refused in one line.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from linear_jax import budget, checks, sparse
from linear_jax.data import preprocessing
from linear_jax.scores import linear_scores
from linear_jax.train import checkpoint
from linear_jax.train import epoch as epoch_lib
from linear_jax.train import run as run_lib
from linear_jax.workdir import output_lock


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
  """A trained linear classifier with its preprocessing and class names.

  Attributes:
    params: ``{"W": [D, C], "b": [C]}`` float32 (D counts the ones column
      when ``stats.bias_column``).
    stats: the ``PreprocessStats`` fitted on the training split.
    class_names: the C class names, in label order.
    image_shape: ``(H, W, C)`` of one raw example for image data, else None.
    svmlight_zero_based: for a model trained on svmlight files, whether their
      feature indices started at 0 (inputs are read the same way).
  """

  params: dict
  stats: preprocessing.PreprocessStats
  class_names: tuple
  image_shape: tuple | None = None
  svmlight_zero_based: bool | None = None

  @property
  def num_classes(self) -> int:
    """C, the number of classes."""
    return len(self.class_names)

  def preprocess(self, x_raw: ArrayLike) -> jax.Array:
    """Raw ``[N, ...]`` -> float32 ``[N, D]``: (x − μ) / σ (+ ones column)."""
    return self.stats.apply_jax(x_raw)

  def scores(self, x_raw: ArrayLike) -> jax.Array:
    """S = f(preprocess(x_raw); W, b): float32 ``[N, C]``.

    ``scipy.sparse`` inputs (not jittable) are padded to the training
    features (more are refused), preprocessed on the host and scored in
    row blocks; for a model trained on dense rows (its statistics centre
    them) they are densified first, as its training rows were.
    """
    if sparse.is_sparse(x_raw):
      x = sparse.with_width(
        sparse.as_csr(x_raw, "inputs"), self.stats.num_features, "inputs"
      )
      if self.stats.mean is not None:
        return jax.jit(self.scores)(x.toarray())
      rows = sparse.to_device(self.stats.apply(x))
      return sparse.jit_map_scores(self.params, rows)
    return linear_scores(self.params, self.preprocess(x_raw))

  def predict(self, x_raw: ArrayLike) -> jax.Array:
    """argmax_j s_j: int32 labels ``[N]`` in [0, C)."""
    return jnp.argmax(self.scores(x_raw), axis=-1).astype(jnp.int32)

  def names(self, labels: ArrayLike) -> np.ndarray:
    """The class name of each label: ``[N]`` strings."""
    return np.asarray([str(c) for c in self.class_names])[np.asarray(labels)]


def load_model(workdir: str) -> Model:
  """The ``Model`` saved in ``workdir/checkpoint.npz``.

  Raises:
    LinearJaxError: no or a damaged checkpoint, or one without the model's
      description (one line each).
  """
  path = os.path.join(workdir, checkpoint.CHECKPOINT_NAME)
  meta = checkpoint.load_metadata(path)
  model = meta.get("model")
  if not model:
    raise checks.LinearJaxError(
      f"{path} does not describe its model (class names, feature count); "
      "train again to predict with it"
    )
  config = run_lib.RunConfig.from_dict(meta["config"])
  template = epoch_lib.init_state(
    config.train_config(),
    config.hparams(),
    config.seed,
    model["num_features"],
    len(model["class_names"]),
    1,
  )
  state, best, stats, _ = checkpoint.load(path, template, template.params)
  params = best if best is not None else state.params
  image_shape = model.get("image_shape")
  return Model(
    params={k: jnp.asarray(v, jnp.float32) for k, v in params.items()},
    stats=preprocessing.PreprocessStats.from_dict(stats),
    class_names=tuple(model["class_names"]),
    image_shape=None if image_shape is None else tuple(image_shape),
    svmlight_zero_based=model.get("svmlight_zero_based"),
  )


# ---------------------------------------------------------------- inputs


def load_inputs(
  spec: str,
  *,
  split: str = "test",
  num_features: int | None = None,
  zero_based: bool | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
  """Raw examples (and their labels as strings, if the input has them).

  Args:
    spec: ``npz:PATH`` (keys ``x`` and optionally ``y``, or the ``split``'s
      ``x_<split>``/``y_<split>``; or a ``scipy.sparse.save_npz`` file with
      optional labels in ``PATH.labels.npy``), ``svmlight:PATH`` (labels
      read too), or
      ``folder:PATH`` (images in the tfds ImageFolder layout, the ``split``'s
      folder; class folders give the labels). A bare ``PATH.npz`` is
      ``npz:PATH``.
    split: which split of a file holding several (``test``, ``train``,
      ``val``/``validation``).
    num_features: D of the model (sparse inputs are read with that width:
      fewer features padded, more refused).
    zero_based: whether the model's svmlight features were 0-based (None:
      decided from the file).

  Returns:
    ``(x_raw [N, ...], labels [N] str or None)``; ``x_raw`` is CSR for
    sparse inputs.
  """
  from linear_jax.data import npz_source, sparse_source  # pylint: disable=g-import-not-at-top

  kind, _, path = spec.partition(":")
  if not path and spec.endswith(".npz"):
    kind, path = "npz", spec
  if kind == "npz" and sparse_source.is_scipy_sparse_npz(path):
    x, y = sparse_source.read_sparse_npz(path, labels_required=False)
    if num_features is not None:
      x = sparse.with_width(x, num_features, f"npz:{path}")
    return x, (
      None
      if y is None
      else npz_source.label_values(y, "labels", f"npz:{path}").astype(str)
    )
  if kind == "npz":
    raw = npz_source.read_npz_arrays(path)
    short = {"validation": "val"}.get(split, split)
    for xk, yk in (("x", "y"), (f"x_{short}", f"y_{short}")):
      if xk in raw:
        x = npz_source.features_array(raw[xk], xk, f"npz:{path}")
        y = raw.get(yk)
        return x, (
          None
          if y is None
          else npz_source.label_values(y, yk, f"npz:{path}").astype(str)
        )
    raise checks.LinearJaxError(
      f"npz:{path} has neither 'x' nor 'x_{short}' (found keys "
      f"{', '.join(sorted(raw)) or 'none'}); store the inputs as x"
    )
  if kind == "svmlight":
    ((x, y),), _ = sparse_source.read_svmlight(
      [path],
      f"svmlight:{path}",
      num_features=num_features,
      zero_based=zero_based,
    )
    return x, npz_source.label_values(y, "labels", f"svmlight:{path}").astype(
      str
    )
  if kind == "folder":
    from linear_jax.data import folder_source  # pylint: disable=g-import-not-at-top

    folder = folder_source.load_folder(path, skip_unreadable=False)
    name = {"val": "validation"}.get(split, split)
    if name not in folder.splits:
      raise checks.LinearJaxError(
        f"folder:{path} has no {split!r} split (it has "
        f"{', '.join(sorted(folder.splits))}); pass --split"
      )
    x, y = folder.splits[name]
    return x, np.asarray(folder.class_names)[np.asarray(y)].astype(str)
  raise checks.LinearJaxError(
    f"--input {spec!r}: give npz:PATH, svmlight:PATH or folder:PATH"
  )


def label_indices(model: Model, names: np.ndarray) -> np.ndarray:
  """Labels given as class names -> int ``[N]`` in the model's order."""
  index = {str(c): i for i, c in enumerate(model.class_names)}
  unknown = sorted(set(names.tolist()) - set(index))
  if unknown:
    raise checks.LinearJaxError(
      f"the inputs' labels {unknown[:5]} are not among the model's classes "
      f"{list(model.class_names)[:10]}; pass inputs of the same classes"
    )
  return np.asarray([index[n] for n in names.tolist()], np.int32)


def write_predictions(path: str, model: Model, scores: np.ndarray) -> None:
  """Writes ``.npz`` or ``.csv`` predictions atomically.

  ``.npz``: ``labels [N]`` (the predicted class indices),
  ``predicted_class_names [N]`` (their names), ``scores [N, C]`` and
  ``classes [C]`` (every class name, in label order). ``.csv``: one row per
  example, ``index,label,class_name,score_<class>…``.

  Args:
    path: the output file, ``.npz`` or ``.csv``.
    model: the ``Model`` that scored the examples (its class names).
    scores: ``[N, C]`` scores.
  """
  from linear_jax import io  # pylint: disable=g-import-not-at-top

  labels = np.argmax(scores, axis=-1)
  names = model.names(labels)
  if path.endswith(".npz"):
    arrays = {
      "labels": labels.astype(np.int32),
      "predicted_class_names": names,
      "scores": scores.astype(np.float32),
      "classes": np.asarray([str(c) for c in model.class_names]),
    }
    io.atomic_write(path, lambda f: np.savez(f, **arrays))
  elif path.endswith(".csv"):
    import csv  # pylint: disable=g-import-not-at-top
    import io as std_io  # pylint: disable=g-import-not-at-top

    out = std_io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
      ["index", "label", "class_name"]
      + [f"score_{c}" for c in model.class_names]
    )
    for i, (label, name, row) in enumerate(
      zip(labels, names, scores, strict=False)
    ):
      writer.writerow(
        [i, int(label), name] + [repr(float(np.float32(v))) for v in row]
      )
    io.atomic_write(path, out.getvalue())
  else:
    raise checks.LinearJaxError(f"--output {path}: name a .npz or .csv file")


def check_scores_finite(scores: np.ndarray) -> None:
  """Refuses scores ``[N, C]`` that overflowed float32 (inputs in range whose
  products x·W are not), naming the first such example.
  """
  bad = ~np.isfinite(scores).all(axis=1)
  if bad.any():
    rows = np.flatnonzero(bad)
    raise checks.LinearJaxError(
      f"the scores of {len(rows)} examples overflow float32 (first: example "
      f"{rows[0]}); the inputs are far outside the training data's scale, rescale them as "
      "the training data was (nothing was written)"
    )


def predict_file(
  workdir: str,
  input_spec: str,
  output: str,
  *,
  split: str = "test",
  memory_budget: str | None = None,
) -> dict:
  """Loads ``workdir``'s model, predicts ``input_spec``, writes ``output``.

  ``memory_budget``: the host memory the inputs may take (a size such as
  ``4GiB``; default ``linear_jax.budget``'s).

  Returns:
    ``{"examples", "output", "accuracy"}``; ``accuracy`` is None when the
    inputs carry no labels.
  """
  if not output.endswith((".npz", ".csv")):
    raise checks.LinearJaxError(f"--output {output}: name a .npz or .csv file")
  with output_lock(output):  # one writer per output, checked under the lock
    return _predict_file(
      workdir, input_spec, output, split=split, memory_budget=memory_budget
    )


def _predict_file(
  workdir: str,
  input_spec: str,
  output: str,
  *,
  split: str,
  memory_budget: str | None,
):
  """``predict_file``'s work, under the output's lock."""
  if os.path.lexists(output):
    raise checks.LinearJaxError(
      f"{output} exists; choose another --output (nothing was overwritten)"
    )
  model = load_model(workdir)
  with budget.limited(memory_budget):
    x_raw, names = load_inputs(
      input_spec,
      split=split,
      num_features=model.stats.num_features,
      zero_based=model.svmlight_zero_based,
    )
  preprocessing.check_finite(x_raw, "inputs")
  labels = None if names is None else label_indices(model, names)
  score_fn = model.scores if sparse.is_sparse(x_raw) else jax.jit(model.scores)
  scores = np.asarray(score_fn(x_raw))
  check_scores_finite(scores)
  write_predictions(output, model, scores)
  accuracy = (
    None
    if labels is None
    else float(np.mean(np.argmax(scores, axis=-1) == labels))
  )
  return {"examples": int(len(scores)), "output": output, "accuracy": accuracy}
