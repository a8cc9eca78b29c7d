"""Progress of long work: a counter with elapsed time and ETA, and timed steps.

One reporter for training epochs, sweep chunks and data loading::

    from linear_jax import progress

    with progress.timed("compiling the epoch (first time)"):
      compiled = epoch_fn.lower(state, hparams, data).compile()

    bar = progress.Progress("epoch", total=epochs)
    for k in range(1, epochs + 1):
      ...
      bar.update(k, note="loss 0.41  val acc 0.93")
    bar.close()

``Progress.update(done, total=None, *, note="")`` reports ``done`` of
``total`` units with the elapsed seconds and the ETA, elapsed / done ·
(total − done), measured from the first update's baseline (``start``, e.g.
the epoch a resumed run begins at), so a resumed run's ETA counts only its
own pace. When stderr is a terminal it draws a ``tqdm`` bar; otherwise (logs,
pipes, tests) it writes one absl log line per update::

    epoch 3/10  loss 0.4100  val acc 0.9300  elapsed 1.2 s  ETA 2.8 s

``timed(what)`` logs ``"<what> ..."`` before and ``"<what>: 1.23 s"`` after
its block, and keeps the seconds in ``.seconds``.
"""

from __future__ import annotations

import contextlib
import sys
import time

from absl import logging


def format_seconds(seconds: float) -> str:
  """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
  if seconds < 10:
    return f"{seconds:.2f} s"
  if seconds < 60:
    return f"{seconds:.1f} s"
  minutes, secs = divmod(int(round(seconds)), 60)
  if minutes < 60:
    return f"{minutes} min {secs:02d} s"
  hours, minutes = divmod(minutes, 60)
  return f"{hours} h {minutes:02d} min"


def stderr_is_terminal() -> bool:
  """Whether stderr is a terminal (False when it is closed or replaced)."""
  try:
    return sys.stderr.isatty()
  except (AttributeError, ValueError):
    return False


class Progress:
  """Counts ``done`` of ``total`` units and reports elapsed time and ETA.

  Args:
    description: what is counted, e.g. ``"epoch"`` or ``"chunk"``.
    total: the number of units.
    start: units already done before this reporter began (a resumed run).
    bar: draw a tqdm bar (default: when stderr is a terminal); otherwise
      one absl INFO line per update.
    every_seconds: without a bar, log at most one line per this many seconds
      (the last unit is always logged).
  """

  def __init__(
    self,
    description: str,
    total: int,
    *,
    start: int = 0,
    bar: bool | None = None,
    every_seconds: float = 0.0,
  ):
    self.description = description
    self.total = total
    self.start = start
    self.done = start
    self.every_seconds = every_seconds
    self._t0 = time.perf_counter()
    self._last_log = -float("inf")
    self._bar = None
    if stderr_is_terminal() if bar is None else bar:
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top

      self._bar = tqdm(
        total=total,
        initial=start,
        desc=description,
        unit=description,
        dynamic_ncols=True,
        leave=True,
      )

  @property
  def elapsed(self) -> float:
    """Seconds since the start, less the discounted ones."""
    return time.perf_counter() - self._t0

  def discount(self, seconds: float) -> None:
    """Leaves ``seconds`` of work that is not counted (e.g. compiling a
    program midway) out of the elapsed time and so out of the pace.
    """
    self._t0 += seconds

  def eta(self, elapsed: float | None = None) -> float | None:
    """Seconds left at the pace so far (None before the first unit)."""
    ran = self.done - self.start
    if ran <= 0:
      return None
    elapsed = self.elapsed if elapsed is None else elapsed
    return elapsed / ran * max(self.total - self.done, 0)

  def update(
    self, done: int, total: int | None = None, *, note: str = ""
  ) -> None:
    """Reports that ``done`` units (of ``total``, if it changed) are done."""
    if total is not None:
      self.total = total
    if self._bar is not None:
      self._bar.total = self.total
      self._bar.update(done - self.done)
      self.done = done
      if note:
        self._bar.set_postfix_str(note, refresh=True)
      return
    self.done = done
    elapsed = self.elapsed
    if elapsed - self._last_log < self.every_seconds and done < self.total:
      return
    self._last_log = elapsed
    eta = self.eta(elapsed)
    logging.info(
      "%s %d/%d  %s%selapsed %s  ETA %s",
      self.description,
      done,
      self.total,
      note,
      "  " if note else "",
      format_seconds(elapsed),
      "?" if eta is None else format_seconds(eta),
    )

  def close(self) -> None:
    """Closes the bar, if one is drawn (idempotent)."""
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def __enter__(self) -> "Progress":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class _Timer:
  seconds: float = 0.0


@contextlib.contextmanager
def timed(what: str, *, log: bool = True):
  """Logs ``"<what> ..."``, runs the block, logs ``"<what>: <seconds>"``.

  Yields an object whose ``seconds`` is set when the block ends (also with
  ``log=False``, which only measures).
  """
  timer = _Timer()
  if log:
    logging.info("%s ...", what)
  t0 = time.perf_counter()
  try:
    yield timer
  finally:
    timer.seconds = time.perf_counter() - t0
  if log:
    logging.info("%s: %s", what, format_seconds(timer.seconds))
