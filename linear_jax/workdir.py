"""One writer per workdir: ``workdir_lock``, an exclusive lock held for a run.

    from linear_jax.workdir import workdir_lock

    with workdir_lock("runs/svm"):
      ...  # check the workdir, train, write its files

Every binary that writes a workdir (train, sweep, error_decomposition,
predict's output) holds this lock for its whole run, from before it looks at
the workdir's files until after its last write. A second process that wants
the same workdir is refused at once, in one line that names the holder's
PID, host, start time and command, and writes nothing.

How it works. The lock is ``fcntl.flock(LOCK_EX | LOCK_NB)`` on a lock file
inside the workdir (``.lock``; ``.<name>.lock`` beside a single output file,
``output_lock``). The holder writes its PID, host, start time and command
into the file for the refusal message, and deletes the file when it ends.
The kernel drops a flock when its holder dies, however it dies (SIGKILL,
OOM killer, power loss on NFS after the lease expires), so a dead process
never blocks a workdir: a lock file left by one is taken over with a
one-line note naming the dead holder. After locking, the holder checks that
the file it locked is still the one at the path (a run that ends unlinks
it), so two processes never both believe they hold it.

Why this is safe on the filesystems users have:

- Local filesystems (ext4, xfs, btrfs, tmpfs, APFS): flock is exact and
  shared by every process on the machine.
- NFS: since Linux 2.6.12 the NFS client maps flock to a byte-range (POSIX)
  lock on the whole file, which the server arbitrates across hosts (NFSv4
  natively, NFSv3 through lockd). The lock file is opened read-write, which
  such locks need. A mount with ``nolock`` or ``local_lock=flock|all``
  keeps locks on one client: two hosts would then not see each other's
  lock, while two processes on one host still do.
- SMB/CIFS (Linux ≥ 5.5): flock becomes a byte-range lock on the server,
  which also makes the file unreadable to others; the refusal then says the
  holder is unknown.
- Filesystems without locking (flock fails with ENOLCK, EOPNOTSUPP or
  ENOSYS: NFS without a lock daemon, Lustre mounted without ``flock``, some
  FUSE filesystems): the run goes on unlocked, with a one-line warning that
  two runs in the same workdir would not be stopped. Refusing there would
  make the library unusable on those filesystems; they behave as before
  this lock existed.

The lock is per process and re-entrant in the thread that holds it, so a
binary may lock a workdir and call library functions that lock it again;
another thread of the same process is refused like another process. The
lock file descriptor is not inherited across ``exec``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from typing import Iterator

from absl import logging

from linear_jax.checks import LinearJaxError

LOCK_NAME = ".lock"
#: flock errors meaning the filesystem does not lock (run on, with a warning).
UNSUPPORTED = frozenset(
  code
  for code in (
    errno.ENOLCK,
    errno.EOPNOTSUPP,
    getattr(errno, "ENOTSUP", errno.EOPNOTSUPP),
    errno.ENOSYS,
  )
)
_HOLDER_WAIT_SECONDS = 2.0  # for a holder's description, when refused
_ATTEMPTS = 20  # the lock file vanished under us this many times: give up


@dataclasses.dataclass
class _Held:
  fd: int | None  # None: the filesystem does not lock
  thread: int
  count: int = 1


_held: dict[str, _Held] = {}  # real path of the lock file -> its holder here
_held_guard = threading.Lock()


def holder_description() -> dict:
  """What a holder writes into its lock file: pid, host, started, command."""
  return {
    "pid": os.getpid(),
    "host": socket.gethostname(),
    "started": datetime.datetime.now().astimezone().isoformat("T", "seconds"),
    "command": " ".join([os.path.basename(sys.executable)] + sys.argv)[:200],
  }


def _describe(holder: dict | None) -> str:
  if not holder or "pid" not in holder:
    return "another process (its PID and host are not readable yet)"
  text = f"PID {holder['pid']} on {holder.get('host', 'an unknown host')}"
  if holder.get("started"):
    text += f" since {holder['started']}"
  if holder.get("command"):
    text += f" ({holder['command']})"
  return text


def _read_holder(fd: int) -> dict | None:
  try:
    text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    holder = json.loads(text) if text.strip() else None
  except (OSError, ValueError):  # unreadable (SMB), torn or foreign content
    return None
  return holder if isinstance(holder, dict) else None


def _make_dirs(directory: str) -> list[str]:
  """``os.makedirs``; returns the folders it created, deepest first."""
  created = []
  path = os.path.abspath(directory)
  while not os.path.lexists(path):
    created.append(path)
    path = os.path.dirname(path)
  _ensure_dirs(directory)
  return created


def _ensure_dirs(directory: str) -> None:
  """``os.makedirs(directory, exist_ok=True)``, again when a releasing
  process removed the folder between ``mkdir``'s "exists" and makedirs'
  own ``isdir`` check (which then raises ``FileExistsError``).
  """
  for _ in range(_ATTEMPTS):
    try:
      os.makedirs(directory, exist_ok=True)
      return
    except FileExistsError:
      if os.path.lexists(directory) and not os.path.isdir(directory):
        raise  # a file is in the way, not a race
  os.makedirs(directory, exist_ok=True)


def _remove_if_empty(folders: list[str]) -> None:
  for folder in folders:  # deepest first
    try:
      os.rmdir(folder)
    except OSError:  # not empty (it holds outputs), or gone
      return


def _acquire(path: str, subject: str, flag: str) -> int | None:
  """Locks ``path``; returns its descriptor, or None where nothing locks."""
  directory = os.path.dirname(path)
  flags = (
    os.O_RDWR  # NFS and SMB map flock to byte-range locks: write access
    | os.O_CREAT
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
  )
  for _ in range(_ATTEMPTS):
    _ensure_dirs(directory)
    try:
      fd = os.open(path, flags, 0o666)
    except FileNotFoundError:  # the folder was removed meanwhile: again
      continue
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd)
      deadline = time.monotonic() + _HOLDER_WAIT_SECONDS
      while holder is None and time.monotonic() < deadline:
        time.sleep(0.01)  # it locked and is writing its description now
        holder = _read_holder(fd)
      os.close(fd)
      raise LinearJaxError(
        f"{subject} is in use by {_describe(holder)}; wait for that run to "
        f"end or choose another {flag} (nothing was written)"
      ) from None
    except OSError as e:
      if e.errno not in UNSUPPORTED:
        os.close(fd)
        raise
      logging.warning(
        "the filesystem of %s does not support file locks (%s): running "
        "without the lock, so a second run writing there would not be "
        "stopped",
        subject,
        os.strerror(e.errno or 0),
      )
      os.close(fd)
      return None
    # A holder that ended unlinked the file we may have opened before it
    # did: a lock on that orphan excludes nobody, so lock the new one.
    try:
      now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
      now = None
    mine = os.fstat(fd)
    if now is None or (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
      os.close(fd)
      continue
    previous = _read_holder(fd)
    if previous is not None:
      logging.warning(
        "%s: took over the lock of %s, which ended without releasing it",
        subject,
        _describe(previous),
      )
    data = json.dumps(holder_description()).encode("utf-8") + b"\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)  # readable by a refused process on another NFS client
    return fd
  raise LinearJaxError(
    f"could not lock {path}: it kept disappearing while others used "
    f"{subject}; try again or choose another {flag}"
  )


def _release(path: str, fd: int | None) -> None:
  if fd is None:
    return
  with contextlib.suppress(FileNotFoundError):
    os.unlink(path)  # first: whoever opens the path next gets a new file
  os.close(fd)  # ... and this releases the flock


@contextlib.contextmanager
def lock(
  directory: str | os.PathLike,
  *,
  name: str = LOCK_NAME,
  flag: str = "--workdir",
  subject: str | None = None,
) -> Iterator[None]:
  """Holds an exclusive lock on the file ``name`` in ``directory``.

  ``workdir_lock`` and ``output_lock`` are the two uses; see the module
  docstring for the guarantees.

  Args:
    directory: the folder to lock; created if missing, and removed again
      (with the parents this call created) if it is empty at the end.
    name: the lock file's name in ``directory``.
    flag: the option to name in the refusal (``--workdir``, ``--output``).
    subject: what the refusal says is in use (default: ``directory``).

  Yields:
    Nothing; the lock is held inside the ``with`` block.

  Raises:
    LinearJaxError: one line naming the holder's PID and host, when another
      process (or another thread of this one) holds the lock.
  """
  # "file/" names the file as much as "file" does (lexists("file/") is
  # False), so trailing separators go before the checks.
  directory = os.fspath(directory).rstrip(os.sep) or os.sep
  subject = directory if subject is None else subject
  if os.path.lexists(directory) and not os.path.isdir(directory):
    raise LinearJaxError(
      f"{flag} {directory} is a file, not a folder; choose another {flag}"
    )
  path = os.path.join(directory, name)
  created = _make_dirs(directory)
  key = os.path.realpath(path)
  thread = threading.get_ident()
  with _held_guard:
    held = _held.get(key)
    if held is not None and held.thread != thread:
      raise LinearJaxError(
        f"{subject} is in use by another thread of this process (PID "
        f"{os.getpid()}); wait for it or choose another {flag}"
      )
    if held is not None:
      held.count += 1
  if held is not None:  # re-entered by its holder
    try:
      yield
    finally:
      with _held_guard:
        held.count -= 1
    return
  try:
    fd = _acquire(path, subject, flag)
  except BaseException:
    _remove_if_empty(created)
    raise
  with _held_guard:
    _held[key] = _Held(fd, thread)
  try:
    yield
  finally:
    with _held_guard:
      del _held[key]
    _release(path, fd)
    _remove_if_empty(created)


def workdir_lock(
  workdir: str | os.PathLike,
) -> contextlib.AbstractContextManager:
  """Holds ``workdir`` for one writer, inside a ``with`` block.

  Creates ``workdir`` if missing (and removes it again if it is still empty
  at the end, so a refused or failed run leaves nothing).

  Args:
    workdir: the run's output folder.

  Returns:
    A context manager; inside it this process is the only writer.

  Raises:
    LinearJaxError: on entry, when another run holds ``workdir``.
  """
  return lock(workdir)


def output_lock(path: str | os.PathLike) -> contextlib.AbstractContextManager:
  """Holds one output file (``--output``), inside a ``with`` block.

  The lock file is ``.<file name>.lock`` beside ``path``, so runs writing
  other files in the same folder (a training run's workdir) are not
  blocked.

  Args:
    path: the file a run will write.

  Returns:
    A context manager; inside it this process is the only writer of
    ``path``.

  Raises:
    LinearJaxError: on entry, when another run holds ``path``.
  """
  path = os.fspath(path)
  return lock(
    os.path.dirname(os.path.abspath(path)),
    name=f".{os.path.basename(path)}.lock",
    flag="--output",
    subject=path,
  )
