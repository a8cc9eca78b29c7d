"""The memory budget: the host bytes linear_jax plans to use, in one place.

Every estimate made before a large allocation is compared with this one
number: the dense data a source loads (``npz:``, ``svmlight:``, image
folders, tfds), a sweep's host-side results and checkpoint, and on CPUs the
sweep's chunk size (``linear_jax.sweep.memory.device_budget``). Too large is
refused in one line before anything is allocated.

The budget is, first match wins:

1. an explicit value: ``memory_budget("4GiB")``, or the innermost
   ``with limited("4GiB"):`` block (the binaries' ``--memory_budget`` flag);
2. the environment variable ``LINEAR_JAX_MEMORY_BUDGET``;
3. ``AVAILABLE_FRACTION`` of the memory available when asked: ``MemAvailable``
   of ``/proc/meminfo`` (Linux: free memory plus the page cache the kernel
   can drop), else the physical memory (``os.sysconf``).

A size is a number of bytes (``4294967296``, ``4e9``) or a number with a
unit: ``4GiB``, ``512MiB``, ``2.5GB``, ``800M`` (K, M, G, T: powers of 1024
with ``i`` or alone, of 1000 with ``B``).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re

from linear_jax.checks import LinearJaxError

ENV = "LINEAR_JAX_MEMORY_BUDGET"
#: The share of the available memory planned for: the estimates count the
#: arrays, not the interpreter, JAX's runtime and XLA's temporaries (a few
#: hundred MB), nor other programs' growth meanwhile.
AVAILABLE_FRACTION = 0.7
#: Used when the machine reports no memory size at all.
FALLBACK_BYTES = 2 << 30
FLAG_HELP = (
  "host memory linear_jax may plan for: bytes or a size such as 4GiB, "
  "512MiB, 2.5GB; default: $LINEAR_JAX_MEMORY_BUDGET, else "
  f"{AVAILABLE_FRACTION:.0%} of the memory available at start"
)

_OVERRIDE: contextvars.ContextVar = contextvars.ContextVar(
  "linear_jax_memory_budget", default=None
)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"\s*([0-9.]+(?:e[+-]?[0-9]+)?)\s*([kmgt]?)(i?)(b?)\s*")


def parse_size(text, what: str = "--memory_budget") -> int:
  """Bytes from ``4GiB``, ``512MiB``, ``2.5GB``, ``800M``, ``1e9`` or an int.

  Raises:
    LinearJaxError: not a size, or not positive (one line naming ``what``).
  """
  if isinstance(text, (int, float)) and not isinstance(text, bool):
    value = float(text)
  else:
    match = _SIZE.fullmatch(str(text).lower())
    if not match or (match.group(3) and not match.group(2)):
      raise LinearJaxError(
        f"{what}={text!r} is not a size; write bytes or a number with a "
        "unit, e.g. 4GiB, 512MiB, 2.5GB"
      )
    number, unit, binary, byte = match.groups()
    try:
      value = float(number)
    except ValueError:
      value = -1.0
    if unit and byte and not binary:  # GB, MB: powers of 1000
      value *= 1000 ** ("kmgt".index(unit) + 1)
    else:  # GiB, Gi, G: powers of 1024
      value *= _UNITS[unit]
  if not value >= 1 or value != value or value == float("inf"):
    raise LinearJaxError(f"{what}={text!r} must be a positive size, e.g. 4GiB")
  return int(value)


def available_bytes() -> int | None:
  """Memory available now: ``MemAvailable`` (Linux), else the physical
  memory, else None.
  """
  try:
    with open("/proc/meminfo", encoding="ascii") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024  # reported in kB
  except (OSError, ValueError, IndexError):
    pass
  try:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (AttributeError, ValueError, OSError):
    return None


def memory_budget(override=None) -> int:
  """The budget in bytes (module docstring): ``override`` (a size), else the
  innermost ``limited`` block, else ``$LINEAR_JAX_MEMORY_BUDGET``, else a
  share of the available memory.
  """
  if override is not None:
    return parse_size(override)
  if _OVERRIDE.get() is not None:
    return _OVERRIDE.get()
  if os.environ.get(ENV):
    return parse_size(os.environ[ENV], ENV)
  available = available_bytes()
  if not available:
    return FALLBACK_BYTES
  return int(available * AVAILABLE_FRACTION)


def describe(override=None) -> str:
  """Where the budget comes from, for messages: ``--memory_budget=4GiB``,
  ``LINEAR_JAX_MEMORY_BUDGET=4GiB`` or ``70% of 20.1 GiB available``.
  """
  if override is not None:
    return f"--memory_budget={override}"
  if _OVERRIDE.get() is not None:
    return f"--memory_budget={format_size(_OVERRIDE.get())}"
  if os.environ.get(ENV):
    return f"{ENV}={os.environ[ENV]}"
  available = available_bytes()
  if not available:
    return "the fallback for machines that report no memory size"
  return f"{AVAILABLE_FRACTION:.0%} of {format_size(available)} available"


@contextlib.contextmanager
def limited(size):
  """Within the block, ``memory_budget()`` is ``size`` (None: unchanged)."""
  if size is None:
    yield
    return
  token = _OVERRIDE.set(parse_size(size))
  try:
    yield
  finally:
    _OVERRIDE.reset(token)


def format_size(num_bytes: float) -> str:
  """``2.29 GiB``, ``512.0 MiB`` or ``3199 bytes``."""
  if num_bytes >= 2**30:
    return f"{num_bytes / 2**30:.2f} GiB"
  if num_bytes >= 2**20:
    return f"{num_bytes / 2**20:.1f} MiB"
  return f"{int(num_bytes)} bytes"


def check_fits(need: int, what: str, fix: str, *, override=None) -> None:
  """Refuses ``need`` bytes over the budget, in one line.

  Args:
    need: the estimated peak, in bytes.
    what: what needs it (``npz:x.npz: x_train [N, D] float64 ...``).
    fix: how to need less (``use fewer examples``).
    override: an explicit budget (a size), as ``memory_budget``.

  Raises:
    LinearJaxError: naming the need, the budget and where it comes from,
      the fix, and how to raise the budget.
  """
  budget = memory_budget(override)
  if need > budget:
    raise LinearJaxError(
      f"{what} needs ~{format_size(need)}, over the {format_size(budget)} "
      "memory budget "
      f"({describe(override)}); {fix}, or raise the budget with "
      f"--memory_budget or {ENV} if the machine has the memory"
    )
