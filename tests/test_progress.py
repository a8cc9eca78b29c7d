"""``linear_jax.progress``: counts, elapsed time, ETA, tqdm only on a tty."""

from absl import logging as absl_logging

from linear_jax import progress


def test_log_lines_count_and_estimate(monkeypatch):
  lines = []
  monkeypatch.setattr(
    absl_logging, "info", lambda fmt, *args: lines.append(fmt % args)
  )
  clock = iter([100.0, 102.0, 104.0])
  monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
  bar = progress.Progress("epoch", 10, start=2, bar=False)
  assert bar.eta() is None
  bar.update(3, note="loss 0.5")  # 1 epoch in 2 s, 7 to go
  assert lines[-1] == "epoch 3/10  loss 0.5  elapsed 2.00 s  ETA 14.0 s"
  bar.update(4, total=5)  # 2 epochs in 4 s, 1 to go
  assert lines[-1] == "epoch 4/5  elapsed 4.00 s  ETA 2.00 s"


def test_bar_on_a_terminal_only(monkeypatch):
  monkeypatch.setattr(progress, "stderr_is_terminal", lambda: False)
  assert progress.Progress("chunk", 3)._bar is None
  monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)
  with progress.Progress("chunk", 3) as bar:
    bar.update(2)
    assert bar._bar.n == 2
  assert bar._bar is None


def test_timed_reports_seconds(monkeypatch):
  lines = []
  monkeypatch.setattr(
    absl_logging, "info", lambda fmt, *args: lines.append(fmt % args)
  )
  clock = iter([5.0, 6.5])
  monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
  with progress.timed("compiling x (first time)") as timer:
    pass
  assert timer.seconds == 1.5
  assert lines == [
    "compiling x (first time) ...",
    "compiling x (first time): 1.50 s",
  ]
  assert progress.format_seconds(245) == "4 min 05 s"


def test_throttled_lines_and_discounted_time(monkeypatch):
  lines = []
  monkeypatch.setattr(
    absl_logging, "info", lambda fmt, *args: lines.append(fmt % args)
  )
  clock = iter([0.0, 1.0, 2.5, 3.5, 4.0])
  monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
  bar = progress.Progress("images", 4, bar=False, every_seconds=2.0)
  bar.update(1)  # t = 1.0: the first line
  bar.update(2)  # t = 2.5: 1.5 s after the last line, dropped
  bar.discount(2.0)  # 2 s of compiling: not the counted work's pace
  bar.update(3)  # t = 3.5 - 2 = 1.5 < 1.0 + 2: dropped
  bar.update(4)  # the last unit is always logged; 4 units in 2.0 s
  assert lines == [
    "images 1/4  elapsed 1.00 s  ETA 3.00 s",
    "images 4/4  elapsed 2.00 s  ETA 0.00 s",
  ]
