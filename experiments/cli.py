"""Shared absl plumbing for the binaries: flags generated from a config
dataclass, one-line errors, no traceback.

    cli.define_flags(RunConfig)        # one flag per field, help from metadata
    config = cli.config_from_flags(RunConfig).validate()
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import traceback
import typing

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # pylint: disable=wrong-import-position

from linear_jax.checks import LinearJaxError  # pylint: disable=wrong-import-position


def quiet_backend_probe() -> None:
  """Hides JAX's INFO line about the missing TPU library (not an error)."""
  import logging

  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)


def fail(message: str) -> None:
  """Prints ``error: message`` on one line to stderr and exits with status 1.

  In a ``jax.distributed`` run the process leaves at once (``os._exit``): a
  normal exit waits in JAX's shutdown barrier for every process, and one
  that failed alone would leave the others in their next cross-process sum
  until the barrier's timeout (300 s), then abort them with stack traces.
  """
  print(f"error: {message}", file=sys.stderr)
  if _distributed():
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
  sys.exit(1)


def _terminate(signum, frame):
  raise KeyboardInterrupt  # SIGTERM ends a run as Ctrl-C does


def run_main(main):
  """Wraps an absl ``main`` so that ``LinearJaxError`` (and a failing path or
  allocation) exits with one line, and SIGTERM is handled as SIGINT: the
  run saves what it checkpoints (``linear_jax.train.loop.DeferredSignals``)
  and exits with the same one line.
  """

  def wrapped(argv):
    if len(argv) > 1:
      fail(f"unexpected arguments {argv[1:]}; every option is a --flag")
    signal.signal(signal.SIGTERM, _terminate)
    try:
      return main(argv)
    except LinearJaxError as e:
      fail(str(e))
    except KeyboardInterrupt:
      fail("interrupted; the last completed checkpoint is kept")
    except OSError as e:  # a path the user gave: missing, not a folder, ...
      where = f": {e.filename}" if e.filename else ""
      fail(f"{e.strerror or e}{where}; check the path and its permissions")
    except MemoryError:
      fail("out of memory; use a smaller dataset, batch or --chunk_size")
    except Exception as e:
      if not _distributed():
        raise
      _leave(e)

  return wrapped


def _distributed() -> bool:
  """Whether this process joined a ``jax.distributed`` job."""
  jax = sys.modules.get("jax")
  return bool(jax and jax.distributed.is_initialized())


def _leave(error: Exception) -> None:
  """Ends a process of a multi-process run that failed outside the checks
  that stop every process together (``shards.raise_together``): typically a
  cross-process sum whose peer died. The traceback (it may be a bug), one
  line, then exit 1 at once (``fail``).
  """
  traceback.print_exc()
  first = (str(error).strip().splitlines() or [""])[0]
  fail(
    f"{type(error).__name__}: {first}; this process stops, as another "
    "process of the run may have (see its output)"
  )


def parse_flags(argv):
  """Absl flag parsing whose errors are one line (``error: flag --x=...``)."""
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


RANGE_KINDS = ("logspace", "linspace")


def _number(text: str, flag: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise LinearJaxError(
      f"--{flag}: {text!r} is not a number; use a comma list like 1e-4,1e-3 "
      "or a range like logspace:1e-4:1e-1:4"
    ) from None
  if not np.isfinite(value):
    raise LinearJaxError(f"--{flag}: {text!r} is not a finite number")
  return value


def _range(item: str, flag: str) -> list[float]:
  kind, *parts = item.split(":")
  if kind not in RANGE_KINDS or len(parts) != 3:
    raise LinearJaxError(
      f"--{flag}: bad range {item!r}; write logspace:START:STOP:NUM or "
      "linspace:START:STOP:NUM, e.g. logspace:1e-4:1e-1:4"
    )
  start, stop = _number(parts[0], flag), _number(parts[1], flag)
  try:
    num = int(parts[2])
  except ValueError:
    num = 0
  if num < 1:
    raise LinearJaxError(
      f"--{flag}: in {item!r} NUM must be an integer ≥ 1, got {parts[2]!r}"
    )
  if kind == "logspace":
    if start <= 0 or stop <= 0:
      raise LinearJaxError(
        f"--{flag}: logspace needs START and STOP > 0, got {item!r}; use "
        "linspace or list 0 separately, e.g. 0,logspace:1e-4:1e-1:4"
      )
    return [float(v) for v in np.logspace(np.log10(start), np.log10(stop), num)]
  return [float(v) for v in np.linspace(start, stop, num)]


def parse_values(text: str, flag: str) -> tuple[float, ...]:
  """A comma list of numbers and ranges -> a tuple of floats.

  Each item is a number or a range: ``logspace:START:STOP:NUM`` (NUM values
  spaced evenly in log10 from START to STOP, both included, both > 0) or
  ``linspace:START:STOP:NUM``; e.g. ``0,logspace:1e-4:1e-1:4`` is
  ``(0, 1e-4, 1e-3, 1e-2, 1e-1)``. Duplicates are dropped, the order kept.
  Ranges of values (≥ 0, > 0) are the config's to check.

  Raises:
    LinearJaxError: one line naming ``--flag`` and the expected syntax.
  """
  values = []
  for item in _items(text):
    values.extend(_range(item, flag) if ":" in item else [_number(item, flag)])
  return tuple(dict.fromkeys(values))


def parse_ints(text: str, flag: str) -> tuple[int, ...]:
  """``"0,1,2"`` -> ``(0, 1, 2)`` (seeds), duplicates dropped."""
  try:
    return tuple(dict.fromkeys(int(item) for item in _items(text)))
  except ValueError:
    raise LinearJaxError(
      f"--{flag}: {text!r} must be comma-separated integers, e.g. 0,1,2"
    ) from None


def _items(text: str) -> list[str]:
  return [item.strip() for item in str(text).split(",") if item.strip()]


_PARSE = {
  float: parse_values,
  int: parse_ints,
  str: lambda text, flag: tuple(dict.fromkeys(_items(text))),
}
_DEFINE = {
  bool: "DEFINE_bool",
  int: "DEFINE_integer",
  float: "DEFINE_float",
  str: "DEFINE_string",
}


def _base_type(hint):
  """``int`` for ``int`` and ``int | None``; ``tuple[float, ...]`` stays."""
  args = [a for a in typing.get_args(hint) if a is not type(None)]
  return args[0] if args and typing.get_origin(hint) is not tuple else hint


def _element_type(hint):
  """``float`` for ``tuple[float, ...]``, None for a scalar field."""
  hint = _base_type(hint)
  return typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None


def define_flags(config_class, *, exclude=(), flag_values=None) -> None:
  """Defines one absl flag per field of the dataclass ``config_class``.

  The type comes from the field's annotation, the default from the field,
  and the help text from its ``checks.option`` metadata; a field with
  ``choices`` becomes an enum flag, a ``tuple[...]`` field a comma-list
  string (``parse_values`` syntax for floats). Rules are checked by the
  config's ``validate``, not by flag validators, so they are stated once.
  ``flag_values``: where to define them (default ``absl.flags.FLAGS``).
  """
  from absl import flags  # pylint: disable=g-import-not-at-top

  where = dict(flag_values=flags.FLAGS if flag_values is None else flag_values)
  hints = typing.get_type_hints(config_class)
  for field in dataclasses.fields(config_class):
    if field.name in exclude:
      continue
    help_text = field.metadata.get("help", field.name)
    choices = field.metadata.get("choices")
    if _element_type(hints[field.name]) is not None:
      default = ",".join(str(v) for v in field.default or ())
      if choices is not None:
        help_text = f"{help_text}: {', '.join(choices)}"
      flags.DEFINE_string(field.name, default, help_text, **where)
    elif choices is not None:
      flags.DEFINE_enum(
        field.name, field.default, list(choices), help_text, **where
      )
    else:
      define = getattr(flags, _DEFINE[_base_type(hints[field.name])])
      define(field.name, field.default, help_text, **where)


def config_from_flags(config_class, *, flag_values=None, **overrides):
  """The dataclass ``config_class`` built from the parsed flags of
  ``define_flags`` (comma lists parsed), with ``overrides`` for fields the
  binary sets itself. Not yet validated: call its ``validate()``.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top

  flag_values = flags.FLAGS if flag_values is None else flag_values
  hints = typing.get_type_hints(config_class)
  values = {}
  for field in dataclasses.fields(config_class):
    if field.name in overrides:
      continue
    value = flag_values[field.name].value
    element = _element_type(hints[field.name])
    if element is not None:
      value = _PARSE[element](value, field.name) or (
        None if field.default is None else ()
      )
    values[field.name] = value
  return config_class(**values, **overrides)
