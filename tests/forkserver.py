"""Starts the suite's binaries from a Python that has already imported JAX.

A test that runs ``python -m experiments.train ...`` as a user would spends
about a second of it importing NumPy, JAX, optax and linear_jax before the
binary's first line runs; the suite starts binaries about a hundred times.
This server imports those modules once, then for each request forks a child
that runs the module as ``python -m`` does (``runpy``, as ``__main__``, with
the request's arguments, environment, working directory, stdout and stderr)
and reports how it exited.

What a child shares with a fresh process and what it does not:

- JAX's backend is never started in the server (``serve`` checks), so each
  child creates its own XLA client, reading its environment (``XLA_FLAGS``,
  ``TF_CPP_MIN_LOG_LEVEL``, ``LINEAR_JAX_*``) as a fresh process does.
- Most of the environment is read when a module is imported or the
  interpreter starts (``JAX_*``, ``PYTHON*``, OpenBLAS's threads, the
  locale); a request whose environment differs from the server's in any
  variable but those read when called (``CALL_TIME_PREFIXES``) is run as a
  real subprocess instead (``ForkServer.can_run``). What the server's
  imports add to the environment (``os.environ.setdefault`` in JAX and
  ``experiments.cli``) is added to each child's, as a fresh process's
  imports would; what imports inside the tests add to theirs (TensorFlow's
  variables, ``conftest.IMPORT_ADDED``) is left out of a binary's.
- Every child starts from the server's hash seed; its NumPy and ``random``
  generators are reseeded from the OS. Tests that compare two runs for
  identical results run one of them as a fresh process.
- The server imports no TensorFlow, scikit-learn or PyTorch: a binary that
  needs them imports them itself, as it would in a fresh process.

Tests that signal, kill or stream a running binary, or start several at once,
use real subprocesses. ``LINEAR_JAX_TEST_FORKSERVER=0`` runs every binary as
a real subprocess.
"""

from __future__ import annotations

import contextlib
import gc
import json
import locale
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# What every binary imports before its first line (experiments/cli.py,
# linear_jax.train.run and what they import).
PREIMPORTS = (
  "numpy",
  "jax",
  "jax.numpy",
  "optax",
  "absl.app",
  "absl.flags",
  "absl.logging",
  "experiments.cli",
  "linear_jax.train.run",
  "linear_jax.path",
  "linear_jax.probe",
  "linear_jax.sweep",
  "linear_jax.model",
)
# Variables linear_jax and the tests read when called, never at import: a
# request may differ from the server in these alone and still fork.
CALL_TIME_PREFIXES = (
  "LINEAR_JAX_",
  "TFDS_DATA_DIR",
  "PYTEST_",
  "CXX",
  "HOME",
  "TMPDIR",
)


def _child(request: dict, added: dict[str, str]) -> None:
  """Runs the request's module as ``python -m`` would; exits the process."""
  code: object = 1
  try:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    for target, path in ((1, request["stdout"]), (2, request["stderr"])):
      fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
      os.dup2(fd, target)
      os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for key, value in added.items():
      os.environ.setdefault(key, value)
    random.seed()
    sys.modules["numpy"].random.seed()
    sys.argv = [request["module"], *request["args"]]
    try:
      import runpy  # pylint: disable=g-import-not-at-top

      runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
      code = 0
    except SystemExit as e:
      code = e.code
  except KeyboardInterrupt:  # as python does: the traceback, then SIGINT
    traceback.print_exc()
    sys.stderr.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
  except BaseException:  # noqa: BLE001 - printed as python would
    traceback.print_exc()
    code = 1
  # Leaves through the interpreter's normal exit (atexit handlers, flushed
  # streams, SystemExit's rules for the code), as a finished python -m does.
  raise SystemExit(code)


def serve() -> None:
  """The server: imports, then forks one child per JSON request line."""
  sys.path[0] = os.getcwd()  # as python -m does, not this file's folder
  import importlib  # pylint: disable=g-import-not-at-top

  before = dict(os.environ)
  for name in PREIMPORTS:
    importlib.import_module(name)
  added = {k: v for k, v in os.environ.items() if before.get(k) != v}
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top

  # A backend's threads would not survive fork().
  assert not xla_bridge._backends, "the server must not start JAX's backend"  # noqa: SLF001
  # Children then share the imported modules' pages instead of copying
  # each one a collection touches.
  gc.collect()
  gc.freeze()
  requests = os.fdopen(os.dup(0), "r")
  replies = os.fdopen(os.dup(1), "w")
  fd = os.open(os.devnull, os.O_RDWR)
  os.dup2(fd, 0)
  os.dup2(fd, 1)
  os.close(fd)
  replies.write("ready\n")
  replies.flush()
  for line in requests:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
      requests.close()
      replies.close()
      _child(request, added)
    replies.write(json.dumps({"pid": pid}) + "\n")
    replies.flush()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    replies.write(json.dumps({"returncode": code}) + "\n")
    replies.flush()


class ForkServer:
  """The test side: one server per test process, started when first used."""

  def __init__(self, cwd: str, env: dict[str, str]):
    self.cwd = cwd
    self.env = dict(env)
    self.lock = threading.Lock()
    self.proc = subprocess.Popen(
      [sys.executable, __file__],
      cwd=cwd,
      env=self.env,
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      start_new_session=True,  # its own group: kill() takes every child
    )
    self.pending = b""
    try:
      ready = self._line(time.monotonic() + 120)
    except BaseException:
      self.kill()
      raise
    if ready != "ready":
      self.kill()
      raise RuntimeError("the fork server did not start")

  def can_run(self, env: dict[str, str], cwd: str) -> bool:
    """Whether a fork of the server runs like a fresh process would."""
    keys = {
      k for k in (*env, *self.env) if not k.startswith(CALL_TIME_PREFIXES)
    }
    return (
      self.proc.poll() is None
      and cwd == self.cwd
      and all(env.get(k) == self.env.get(k) for k in keys)
    )

  def kill(self) -> None:
    """Ends the server and any child it runs (a later request starts a new
    server: ``conftest`` checks ``proc.poll()``).
    """
    with contextlib.suppress(ProcessLookupError):
      os.killpg(self.proc.pid, signal.SIGKILL)
    self.proc.wait()

  def _line(self, deadline: float) -> str | None:
    """The next reply line; None if none came before ``deadline``."""
    fd = self.proc.stdout.fileno()
    while b"\n" not in self.pending:
      left = deadline - time.monotonic()
      if left <= 0 or not select.select([fd], [], [], left)[0]:
        return None
      chunk = os.read(fd, 4096)
      if not chunk:
        raise RuntimeError("the fork server exited")
      self.pending += chunk
    line, self.pending = self.pending.split(b"\n", 1)
    return line.decode()

  def run(self, module, args, *, env, timeout):
    """``subprocess.run([python, -m, module, *args], capture_output=True,
    text=True)``, in a fork of the server.
    """
    cmd = [sys.executable, "-m", module, *args]
    with tempfile.TemporaryDirectory(prefix="forkserver-") as tmp:
      out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
      request = {
        "module": module,
        "args": list(args),
        "env": env,
        "cwd": self.cwd,
        "stdout": out,
        "stderr": err,
      }
      # Any failure before both replies are read (a timeout, an interrupted
      # test) would leave this request's replies for the next one: the
      # server and its child are ended instead.
      try:
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        if self._line(deadline + 60) is None:
          raise RuntimeError("the fork server did not start the binary")
        reply = self._line(deadline)
      except BaseException:
        self.kill()
        raise

      def read(path):
        # As subprocess.run(text=True) decodes: strictly, in the locale's.
        with open(path, encoding=locale.getpreferredencoding(False)) as f:
          return f.read()

      if reply is None:
        self.kill()
        raise subprocess.TimeoutExpired(cmd, timeout, read(out), read(err))
      code = json.loads(reply)["returncode"]
      return subprocess.CompletedProcess(cmd, code, read(out), read(err))

  def close(self):
    self.proc.stdin.close()
    try:
      self.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
      self.proc.kill()


if __name__ == "__main__":
  serve()
