"""An on-disk cache of decoded image arrays, written atomically.

Where: the ``data_dir`` argument, else ``$LINEAR_JAX_CACHE``, else
``~/.cache/linear_jax``. Each entry is one folder holding ``<array>.npy``
files (uint8 images ``[N, H, W, C]``, int32 labels ``[N]``) and a
``meta.json`` written last: an entry without ``meta.json`` is incomplete and
ignored. Every file goes through a temporary file and ``os.replace``, so a
crash or a concurrent writer never leaves a half-written file behind.

Entries are named by a key (``content_key``) built from what identifies the
source on disk: absolute path, size and modification time of every file. A
changed source gets a new key and is read again; stale entries are left in
place (delete the cache folder to reclaim the space).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

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


def atomic_write(path: Path, write) -> None:
  """Calls ``write(file_object)`` on a temporary file, then renames it to ``path``."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                             suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


def save_entry(entry: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
  """Writes each array as ``entry/<name>.npy``, then ``entry/meta.json``."""
  for name, array in arrays.items():
    atomic_write(entry / f"{name}.npy",
                 lambda f, a=array: np.save(f, a, allow_pickle=False))
  meta = dict(meta, arrays=sorted(arrays))
  atomic_write(entry / META, lambda f: f.write(json.dumps(meta).encode()))


def load_entry(entry: Path) -> tuple[dict[str, np.ndarray], dict] | None:
  """``(arrays, meta)`` of a complete entry, or None when absent or damaged."""
  try:
    meta = json.loads((entry / META).read_text())
    arrays = {name: np.load(entry / f"{name}.npy", mmap_mode="r")
              for name in meta["arrays"]}
  except (OSError, ValueError, KeyError):
    return None
  return arrays, meta
