"""Checkpoints: one ``.npz`` holding the training state, the best params, the
preprocessing statistics and JSON metadata (the run's config, the epoch).

Written through ``linear_jax.io.atomic_write``: a run killed mid-write leaves
the previous checkpoint intact and loadable. Parameters with NaN/Inf are
refused. Every way a file can be unreadable (missing, truncated, a flipped
byte, another program's file, a state of another optimizer) is one
``LinearJaxError`` line; ``load`` checks that the saved state has the
template's leaves before building it.
"""

from __future__ import annotations

import json
import os
import zipfile

import jax
import numpy as np

from linear_jax import checks, io

CHECKPOINT_NAME = "checkpoint.npz"


def _flatten(prefix: str, tree, out: dict):
  for i, leaf in enumerate(jax.tree.leaves(tree)):
    out[f"{prefix}/{i:04d}"] = np.asarray(jax.device_get(leaf))


def _unflatten(path: str, prefix: str, template, arrays: dict) -> object:
  leaves, treedef = jax.tree.flatten(template)
  saved = sorted(k for k in arrays if k.startswith(prefix + "/"))
  want = [f"{prefix}/{i:04d}" for i in range(len(leaves))]
  shapes_match = saved == want and all(
    np.shape(arrays[k]) == np.shape(leaf)
    for k, leaf in zip(want, leaves, strict=False)
  )
  if not shapes_match:
    raise checks.LinearJaxError(
      f"checkpoint {path} holds a {prefix} of {len(saved)} arrays that does "
      f"not fit this run's ({len(leaves)} arrays); resume with the flags it "
      "was trained with or choose a new --workdir"
    )
  return jax.tree.unflatten(treedef, [arrays[k] for k in want])


def save(
  path: str,
  *,
  state,
  best_params=None,
  metadata: dict,
  stats: dict | None = None,
) -> None:
  """Atomically writes ``state`` (a pytree), ``best_params``, ``stats`` arrays
  and JSON ``metadata`` (config, epoch, ...) to ``path``.
  """
  arrays: dict[str, np.ndarray] = {}
  _flatten("state", state, arrays)
  if best_params is not None:
    _flatten("best_params", best_params, arrays)
  for name, value in (stats or {}).items():
    if value is not None:
      arrays[f"stats/{name}"] = np.asarray(value)
  # The parameters must be finite; optimizer state may hold ±inf by design
  # (optax's lbfgs starts its value and curvature errors at inf).
  params = [getattr(state, "params", state), best_params]
  if not all(
    np.all(np.isfinite(np.asarray(jax.device_get(v))))
    for v in jax.tree.leaves(params)
  ):
    raise checks.LinearJaxError(
      f"refusing to write a checkpoint with NaN/Inf values to {path}; the "
      "previous checkpoint is kept"
    )
  arrays["metadata_json"] = np.asarray(io.dumps(metadata))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  io.atomic_write(path, lambda f: np.savez(f, allow_pickle=False, **arrays))


def read(path: str) -> tuple[dict, dict]:
  """``(arrays by name, metadata)`` of a checkpoint, every member read and
  CRC-checked now; one ``LinearJaxError`` line if it is unreadable.
  """
  if not os.path.exists(path):
    raise checks.LinearJaxError(
      f"no checkpoint at {path}; train first with --workdir pointing there"
    )
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {name: npz[name] for name in npz.files}
    metadata = json.loads(str(arrays.pop("metadata_json")))
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    reason = str(e).splitlines()[0] if str(e) else ""
    raise checks.LinearJaxError(
      f"cannot read checkpoint {path} ({type(e).__name__}: {reason}); it is "
      "damaged: delete it or point --workdir elsewhere"
    ) from None
  return arrays, metadata


def load_metadata(path: str) -> dict:
  """The JSON metadata of a checkpoint (config, epoch, ...)."""
  return read(path)[1]


def load(path: str, state_template, params_template=None):
  """Returns ``(state, best_params or None, stats dict, metadata dict)``.

  ``state_template`` gives the pytree structure (e.g. a freshly initialized
  state for the same config); a saved state of another structure (another
  optimizer) is refused in one line.
  """
  arrays, metadata = read(path)
  state = _unflatten(path, "state", state_template, arrays)
  best = None
  if params_template is not None and "best_params/0000" in arrays:
    best = _unflatten(path, "best_params", params_template, arrays)
  stats = {
    k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("stats/")
  }
  return state, best, stats, metadata
