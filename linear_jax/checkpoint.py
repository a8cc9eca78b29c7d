"""Checkpoints: one ``.npz`` holding the training state, the best params, the
preprocessing statistics and the run's config, written atomically.

The file is written to a temporary name in the same directory and then
``os.replace``d over the old one, so a run killed mid-write leaves the
previous checkpoint intact and loadable. Parameters with NaN/Inf are refused.
"""

from __future__ import annotations

import json
import os
import tempfile

import jax
import numpy as np

from linear_jax import checks

CHECKPOINT_NAME = "checkpoint.npz"


def _flatten(prefix: str, tree, out: dict):
  for i, leaf in enumerate(jax.tree.leaves(tree)):
    out[f"{prefix}/{i:04d}"] = np.asarray(jax.device_get(leaf))


def _unflatten(prefix: str, template, arrays) -> object:
  leaves, treedef = jax.tree.flatten(template)
  loaded = [arrays[f"{prefix}/{i:04d}"] for i in range(len(leaves))]
  return jax.tree.unflatten(treedef, loaded)


def save(path: str, *, state, best_params=None, metadata: dict,
         stats: dict | None = None) -> None:
  """Atomically writes ``state`` (a pytree), ``best_params``, ``stats`` arrays
  and JSON ``metadata`` (config, history, ...) to ``path``."""
  arrays = {}
  _flatten("state", state, arrays)
  if best_params is not None:
    _flatten("best_params", best_params, arrays)
  for name, value in (stats or {}).items():
    if value is not None:
      arrays[f"stats/{name}"] = np.asarray(value)
  params_leaves = [v for k, v in arrays.items()
                   if k.startswith(("state", "best_params")) and
                   np.issubdtype(v.dtype, np.floating)]
  if not all(np.all(np.isfinite(v)) for v in params_leaves):
    raise checks.LinearJaxError(
        f"refusing to write a checkpoint with NaN/Inf values to {path}; the "
        "previous checkpoint is kept")
  arrays["metadata_json"] = np.asarray(json.dumps(metadata))
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".npz.tmp",
                             dir=directory)
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def load_metadata(path: str) -> dict:
  """The JSON metadata of a checkpoint (config, history, ...)."""
  with _open(path) as arrays:
    return json.loads(str(arrays["metadata_json"]))


def load(path: str, state_template, params_template=None):
  """Returns ``(state, best_params or None, stats dict, metadata dict)``.

  ``state_template`` gives the pytree structure (e.g. a freshly initialized
  state for the same config).
  """
  with _open(path) as arrays:
    state = _unflatten("state", state_template, arrays)
    best = None
    if params_template is not None and "best_params/0000" in arrays:
      best = _unflatten("best_params", params_template, arrays)
    stats = {k.split("/", 1)[1]: arrays[k] for k in arrays.files
             if k.startswith("stats/")}
    metadata = json.loads(str(arrays["metadata_json"]))
  return state, best, stats, metadata


def _open(path: str):
  if not os.path.exists(path):
    raise checks.LinearJaxError(
        f"no checkpoint at {path}; train first with --workdir pointing there")
  try:
    return np.load(path, allow_pickle=False)
  except Exception as e:  # a truncated or foreign file
    raise checks.LinearJaxError(
        f"cannot read checkpoint {path} ({type(e).__name__}: {e}); delete it "
        "or point --workdir elsewhere") from None
