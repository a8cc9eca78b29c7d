"""An on-disk cache of decoded image arrays, verified on every load.

Where: the ``data_dir`` argument, else ``$LINEAR_JAX_CACHE``, else
``~/.cache/linear_jax``. Each entry is one folder holding ``<array>.npy``
files (uint8 images ``[N, H, W, C]``, int32 labels ``[N]``) and a
``meta.json`` written last: an entry without ``meta.json`` is incomplete and
ignored. Every file is written by ``linear_jax.io.atomic_write``, so a crash
or a concurrent writer never leaves a half-written file behind.

``meta.json`` records each array's shape, dtype and CRC-32 and a SHA-256 of
its own other fields (class names, splits). ``load_entry`` checks all of
them and returns None on any difference, so a damaged or edited entry
(changed bytes, another dtype, a truncated file, reordered class names) is
rebuilt instead of used. CRC-32 (zlib's, one pass over every byte) detects
every change of up to 32 consecutive bits and all but 2⁻³² of other changes,
and is among the cheapest full-content checks, so verifying stays a small part
of a cached load (timings in BENCHMARKS.md); it guards against accidents, not
against someone who rewrites ``meta.json`` as well.

Entries are named by a key (``content_key``) built from what identifies the
source on disk: absolute path, size and modification time of every file. A
changed source gets a new key and is read again; stale entries are left in
place (delete the cache folder to reclaim the space).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import zlib
from pathlib import Path

import numpy as np
from absl import logging

from linear_jax import io

CACHE_ENV = "LINEAR_JAX_CACHE"
DEFAULT_CACHE = Path("~/.cache/linear_jax")
META = "meta.json"


def cache_root(data_dir: str | os.PathLike | None = None) -> Path:
  """The cache folder: ``data_dir``, else ``$LINEAR_JAX_CACHE``, else default."""
  root = data_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE
  return Path(root).expanduser().resolve()


def content_key(*parts) -> str:
  """A stable hex digest of ``parts`` (paths, sizes, mtimes, versions)."""
  digest = hashlib.sha1()
  for part in parts:
    digest.update(repr(part).encode())
    digest.update(b"\0")
  return digest.hexdigest()[:20]


def array_digest(array: np.ndarray) -> str:
  """``"crc32:<8 hex digits>"`` of the array's bytes in C order."""
  flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)  # 0-size too
  return f"crc32:{zlib.crc32(flat.data):08x}"


def _meta_digest(meta: dict) -> str:
  """SHA-256 of ``meta`` without its ``digest`` field, keys sorted."""
  body = {k: v for k, v in meta.items() if k != "digest"}
  return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def save_entry(entry: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
  """Writes each array as ``entry/<name>.npy``, then ``entry/meta.json``.

  An existing ``meta.json`` is removed first, so readers see the entry as
  incomplete until it is whole again.
  """
  entry.mkdir(parents=True, exist_ok=True)
  (entry / META).unlink(missing_ok=True)
  described = {}
  for name, array in arrays.items():
    array = np.ascontiguousarray(array)
    io.atomic_write(
      entry / f"{name}.npy",
      functools.partial(np.save, arr=array, allow_pickle=False),
    )
    described[name] = {
      "shape": list(array.shape),
      "dtype": array.dtype.str,
      "digest": array_digest(array),
    }
  meta = dict(meta, arrays=described)
  meta["digest"] = _meta_digest(meta)
  io.atomic_write(entry / META, io.dumps(meta))


def _verified(entry: Path) -> tuple[dict[str, np.ndarray], dict]:
  """``(arrays, meta)`` of ``entry``; raises ValueError naming what differs."""
  meta = json.loads((entry / META).read_text())
  if not isinstance(meta, dict) or meta.get("digest") != _meta_digest(meta):
    raise ValueError(f"{META} does not match its digest")
  described = meta.get("arrays")
  if not isinstance(described, dict):
    raise ValueError(f"{META} describes no arrays")
  arrays = {}
  for name, want in described.items():
    array = np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False)
    if list(array.shape) != want["shape"] or array.dtype.str != want["dtype"]:
      raise ValueError(
        f"{name}.npy is {array.dtype.str} {list(array.shape)}, expected "
        f"{want['dtype']} {want['shape']}"
      )
    if array_digest(array) != want["digest"]:
      raise ValueError(f"{name}.npy does not match its digest")
    arrays[name] = array
  return arrays, meta


def load_entry(entry: Path) -> tuple[dict[str, np.ndarray], dict] | None:
  """``(arrays, meta)`` of a complete, verified entry, or None.

  None when the entry is absent or incomplete (no ``meta.json``), and, with
  one warning line, when anything in it differs from ``meta.json``: the
  caller then rebuilds it.
  """
  if not (entry / META).is_file():
    return None
  try:
    return _verified(entry)
  except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
    logging.warning(
      "cache entry %s is damaged (%s); rebuilding it",
      entry,
      " ".join(str(e).split()) or type(e).__name__,
    )
    return None
