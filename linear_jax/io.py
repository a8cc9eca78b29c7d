"""Writing outputs safely: atomic files, strict JSON, appended JSON lines.

Every file the library writes goes through ``atomic_write``:

- the bytes go to a fresh temporary file made by ``tempfile.mkstemp`` in the
  target's directory (``O_CREAT | O_EXCL`` with a random name, so a symlink
  planted at a predictable name is never followed);
- the file is flushed and ``fsync``ed, given the permissions the umask allows
  (``0o666 & ~umask``, the umask read at import), then ``os.replace``d
  over ``path``: a reader sees the old file or the new one, never a torn one.

``JsonLines`` appends lines to a file it holds open (``O_NOFOLLOW``): each
line is visible to readers at once, and ``sync`` fsyncs them, as a caller's
checkpoint cadence needs; ``append_jsonl`` appends and fsyncs one line.

JSON is strict: NaN and ±inf become ``null`` (``json_safe``), since bare
``NaN`` is not JSON.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from typing import Any, BinaryIO, Callable

TEMP_PREFIX = ".tmp-"


def _read_umask() -> int:
  mask = os.umask(0o022)  # os.umask only reads by setting: once, at import,
  os.umask(mask)  # before other threads could create files
  return mask


_MODE = 0o666 & ~_read_umask()


def atomic_write(
  path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], None]
) -> None:
  """Atomically replaces ``path`` with ``data``.

  Args:
    path: the file to write; its directory must exist.
    data: bytes, a str (written as UTF-8), or a function that writes to the
      binary file object it is given (e.g. ``lambda f: np.savez(f, **arrays)``).
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(
    dir=directory, prefix=TEMP_PREFIX, suffix="-" + os.path.basename(path)
  )
  try:
    with os.fdopen(fd, "wb") as f:
      if callable(data):
        data(f)
      else:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, _MODE)
    os.replace(tmp, path)
  except BaseException:
    if os.path.lexists(tmp):
      os.remove(tmp)
    raise


# mkstemp's names: the prefix, 8 characters of its alphabet, the suffix.
_TEMPORARY = re.compile(re.escape(TEMP_PREFIX) + r"[a-z0-9_]{8}-.+")


def is_temporary(name: str) -> bool:
  """Whether ``name`` is one that ``atomic_write`` gives its temporaries."""
  return _TEMPORARY.fullmatch(name) is not None


def remove_temporaries(directory: str | os.PathLike) -> list[str]:
  """Deletes the temporary files that a killed ``atomic_write`` left in
  ``directory`` (regular files or links named like ``is_temporary``; nothing
  else); returns their names.
  """
  removed = []
  if os.path.isdir(directory):
    for name in sorted(os.listdir(directory)):
      path = os.path.join(directory, name)
      if is_temporary(name) and (os.path.islink(path) or os.path.isfile(path)):
        os.remove(path)
        removed.append(name)
  return removed


def json_safe(obj: Any) -> Any:
  """``obj`` with every non-finite float replaced by None, numpy scalars and
  arrays turned into Python numbers and lists, tuples into lists.
  """
  if isinstance(obj, dict):
    return {str(k): json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [json_safe(v) for v in obj]
  if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
    return json_safe(obj.tolist())  # numpy / jax arrays and scalars
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def dumps(obj: Any, **kwargs) -> str:
  """Strict JSON text of ``json_safe(obj)`` (never NaN or Infinity)."""
  return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike, obj: Any) -> None:
  """Atomically writes ``obj`` as indented, strict JSON."""
  atomic_write(path, dumps(obj, indent=2) + "\n")


class JsonLines:
  """A JSON-lines file open for appending (created if missing).

  ``write`` appends one strict-JSON line with one ``write(2)``: readers see
  it at once, and a killed process keeps it (the kernel has it), though a
  power loss may not; ``sync`` fsyncs every line written so far. Refuses
  to follow a symlink at ``path`` (``O_NOFOLLOW``). Use as a context
  manager, or ``close`` it.

  Args:
    path: the file to append to.
  """

  def __init__(self, path: str | os.PathLike):
    flags = (
      os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    )
    self._fd: int | None = os.open(path, flags, 0o666)

  def write(self, row: dict) -> None:
    """Appends ``row`` as one line."""
    assert self._fd is not None, "closed"
    os.write(self._fd, (dumps(row) + "\n").encode("utf-8"))

  def sync(self) -> None:
    """Makes every line written so far durable (``fsync``)."""
    assert self._fd is not None, "closed"
    os.fsync(self._fd)

  def close(self) -> None:
    """Closes the file (without a ``sync``); idempotent."""
    if self._fd is not None:
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> "JsonLines":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
  """Appends one strict-JSON line to ``path`` and fsyncs it (``JsonLines``).

  Refuses to follow a symlink at ``path`` (``O_NOFOLLOW``).
  """
  with JsonLines(path) as lines:
    lines.write(row)
    lines.sync()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
  """The rows of a JSON-lines file; a torn last line (a killed write) is
  dropped.
  """
  rows = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        break
  return rows
