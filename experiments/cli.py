"""Shared absl plumbing for the binaries: one-line errors, no traceback."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def quiet_backend_probe() -> None:
  """Hides JAX's INFO line about the missing TPU library (not an error)."""
  import logging
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)


def fail(message: str) -> None:
  """Prints ``error: message`` on one line to stderr and exits with status 1."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(1)


def run_main(main):
  """Wraps an absl ``main`` so that ``LinearJaxError`` exits with one line."""
  def wrapped(argv):
    from linear_jax.checks import LinearJaxError
    if len(argv) > 1:
      fail(f"unexpected arguments {argv[1:]}; every option is a --flag")
    try:
      return main(argv)
    except LinearJaxError as e:
      fail(str(e))
    except KeyboardInterrupt:
      fail("interrupted; the last completed checkpoint is kept")
  return wrapped


def parse_flags(argv):
  """absl flag parsing whose errors are one line (``error: flag --x=...``)."""
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(str(e).splitlines()[0].removeprefix("ERROR:: "))


def start(main):
  """``app.run`` with one-line flag and library errors."""
  from absl import app
  quiet_backend_probe()
  app.run(run_main(main), flags_parser=parse_flags)
