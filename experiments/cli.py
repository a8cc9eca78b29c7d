"""Shared absl plumbing for the binaries: flags generated from a config
dataclass, one-line errors, no traceback.

    cli.define_flags(RunConfig)        # one flag per field, help from metadata
    config = cli.config_from_flags(RunConfig).validate()
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing

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


_DEFINE = {bool: "DEFINE_bool", int: "DEFINE_integer", float: "DEFINE_float",
           str: "DEFINE_string"}


def _base_type(hint):
  """``int`` for ``int`` and ``int | None``."""
  args = [a for a in typing.get_args(hint) if a is not type(None)]
  return args[0] if args else hint


def define_flags(config_class, *, exclude=()) -> None:
  """Defines one absl flag per field of the dataclass ``config_class``.

  The type comes from the field's annotation, the default from the field,
  and the help text from its ``checks.option`` metadata; a field with
  ``choices`` becomes an enum flag. Rules are checked by the config's
  ``validate``, not by flag validators, so they are stated once.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  hints = typing.get_type_hints(config_class)
  for field in dataclasses.fields(config_class):
    if field.name in exclude:
      continue
    help_text = field.metadata.get("help", field.name)
    choices = field.metadata.get("choices")
    if choices is not None:
      flags.DEFINE_enum(field.name, field.default, list(choices), help_text)
      continue
    define = getattr(flags, _DEFINE[_base_type(hints[field.name])])
    define(field.name, field.default, help_text)


def config_from_flags(config_class, **overrides):
  """The dataclass ``config_class`` built from the parsed flags of
  ``define_flags``, with ``overrides`` for fields the binary sets itself."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  values = {field.name: flags.FLAGS[field.name].value
            for field in dataclasses.fields(config_class)
            if field.name not in overrides}
  return config_class(**values, **overrides)
