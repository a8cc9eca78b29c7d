"""A sweep's progress on disk, so that a killed sweep continues where it was.

One ``.npz`` file (``SweepCheckpoint.path``), replaced atomically
(``linear_jax.io.atomic_write``) after the first epoch or chunk that ends
``every_seconds`` after the last save, and after the last chunk. Each save
rewrites every configuration's history, so saves follow the clock, not the
chunks: a sweep of many small chunks would otherwise spend its time
rewriting the file. It holds:

- every configuration's metrics so far (``history``, last finite metrics,
  divergence epochs), the best per loss and its params;
- the finished chunks (by name) and the timings so far;
- for an unfinished chunk: its name, the epochs done and its stacked
  ``TrainState`` (params, optimizer state, key, step), exactly as on the
  device;
- a fingerprint of the sweep (grid, algorithm, chunking, data digest), and
  the chunk size, which a resumed sweep with an automatic chunk size takes
  (``saved_chunk_size``) whatever memory is free then.

Resuming restores those arrays bit for bit and replays nothing: finished
chunks are skipped, the unfinished one continues from its saved state with
the same compiled program, so a resumed sweep's results equal an
uninterrupted one's exactly (on the same machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

import jax
import numpy as np

from linear_jax import io
from linear_jax.checks import LinearJaxError

CHECKPOINT_NAME = "sweep_checkpoint.npz"


def data_digest(*arrays) -> str:
  """blake2b of the arrays' shapes, dtypes and bytes (the sweep's data)."""
  h = hashlib.blake2b(digest_size=16)
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(f"{a.shape}{a.dtype}".encode())
    h.update(a.reshape(-1).view(np.uint8).data)
  return h.hexdigest()


def fingerprint(description: dict) -> str:
  """sha256 of a JSON description of everything that sets the numbers."""
  text = json.dumps(description, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()


class SweepCheckpoint:
  """Saves and loads a sweep's progress (module docstring).

  Attributes:
    path: the ``.npz`` file.
    fingerprint: must match on load.
    every_seconds: the save interval (0: every epoch).
    writer: only the writer process saves (all processes load).
    chunk_size: the sweep's configurations per chunk, saved beside the
      fingerprint.
  """

  def __init__(
    self,
    path: str,
    fingerprint_: str,
    *,
    every_seconds: float = 300.0,
    writer: bool = True,
    chunk_size: int | None = None,
  ):
    self.path = path
    self.fingerprint = fingerprint_
    self.every_seconds = every_seconds
    self.writer = writer
    self.chunk_size = chunk_size
    self.last_save = time.monotonic()

  def due(self) -> bool:
    """Whether ``every_seconds`` have passed since the last save."""
    return time.monotonic() - self.last_save >= self.every_seconds

  def save(self, progress: dict, chunk: dict | None = None) -> None:
    """Writes ``progress`` (see ``_Sweep.snapshot``) and an unfinished chunk.

    Args:
      progress: name -> numpy array or JSON-able value.
      chunk: None, or ``{"name", "epoch", "state"}`` with ``state`` a pytree
        of numpy arrays.
    """
    self.last_save = time.monotonic()
    if not self.writer:
      return
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"fingerprint": self.fingerprint}
    if self.chunk_size is not None:
      meta["chunk_size"] = int(self.chunk_size)
    for name, value in progress.items():
      if isinstance(value, np.ndarray):
        arrays[f"progress/{name}"] = value
      else:
        meta[name] = value
    if chunk is not None:
      meta["chunk"] = {"name": chunk["name"], "epoch": chunk["epoch"]}
      for i, leaf in enumerate(jax.tree.leaves(chunk["state"])):
        arrays[f"chunk/{i:04d}"] = np.asarray(leaf)
    arrays["meta_json"] = np.asarray(io.dumps(meta))
    io.atomic_write(
      self.path, lambda f: np.savez(f, allow_pickle=False, **arrays)
    )

  def load(self) -> tuple[dict, dict | None] | None:
    """``(progress, chunk or None)``, or None when there is no checkpoint.

    ``chunk["leaves"]`` is the list of the unfinished chunk's state leaves.

    Raises:
      LinearJaxError: an unreadable file, or one from a different sweep.
    """
    if not os.path.exists(self.path):
      return None
    try:
      with np.load(self.path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta_json"]))
        progress = {
          k.split("/", 1)[1]: f[k] for k in f.files if k.startswith("progress/")
        }
        leaves = [
          f[k] for k in sorted(k for k in f.files if k.startswith("chunk/"))
        ]
    except Exception as e:  # pylint: disable=broad-except  # torn or foreign
      raise LinearJaxError(
        f"cannot read the sweep checkpoint {self.path} ({type(e).__name__}); "
        "delete it to start the sweep over, or choose a new --workdir"
      ) from None
    if meta.pop("fingerprint", None) != self.fingerprint:
      raise LinearJaxError(
        f"{self.path} belongs to a different sweep (grid, data, algorithm "
        "or chunk size differ); resume with the same flags, or pass "
        "--overwrite to start over"
      )
    chunk = meta.pop("chunk", None)
    meta.pop("chunk_size", None)
    progress.update(meta)
    if chunk is not None:
      chunk["leaves"] = leaves
    return progress, chunk


def saved_chunk_size(path: str) -> int | None:
  """The chunk size a checkpoint at ``path`` was made with; None when there
  is none (no file, an unreadable one, or one that does not record it: the
  fingerprint check of ``SweepCheckpoint.load`` reports those).
  """
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as f:
      size = json.loads(str(f["meta_json"])).get("chunk_size")
  except Exception:  # pylint: disable=broad-except  # torn or foreign
    return None
  return int(size) if size else None
