"""Benchmark rows, the one markdown table they print as, and the JSON file.

Every measurement is a ``Row``: a section (``machine`` or one of
``sections.SECTIONS``), what was measured, and whichever of its numbers
apply: time in seconds, a rate (with its unit), a ratio (with what it is a
ratio of), a test accuracy. Numbers the table has no column for go in
``extra`` (kept in the JSON).
"""

from __future__ import annotations

import dataclasses
import os

from linear_jax import io


@dataclasses.dataclass
class Row:
  """One measured line of the benchmark table."""

  section: str
  what: str
  seconds: float | None = None
  rate: float | None = None
  rate_unit: str = ""
  ratio: float | None = None
  ratio_of: str = ""
  accuracy: float | None = None
  note: str = ""
  extra: dict = dataclasses.field(default_factory=dict)

  def to_json(self) -> dict:
    """The row as a dict, without its empty fields."""
    return {
      k: v
      for k, v in dataclasses.asdict(self).items()
      if v is not None and v != "" and v != {}
    }


@dataclasses.dataclass
class Section:
  """A section's rows, plus notes (e.g. why a peer or the section was skipped)."""

  rows: list = dataclasses.field(default_factory=list)
  notes: list = dataclasses.field(default_factory=list)

  def add(self, row: Row, log=None) -> Row:
    """Appends ``row`` (printed through ``log`` if given) and returns it."""
    self.rows.append(row)
    if log is not None:
      log("  " + row_text(row))
    return row


def format_seconds(seconds: float) -> str:
  """1.23 s, 45.6 ms or 789 µs."""
  if seconds >= 1:
    return f"{seconds:.2f} s"
  if seconds >= 1e-3:
    return f"{seconds * 1e3:.3g} ms"
  return f"{seconds * 1e6:.3g} µs"


def format_rate(rate: float, unit: str) -> str:
  """3.2e+05 examples/s, or 12.3 GB/s for units that carry their prefix."""
  if unit in ("GB/s", "GFLOP/s"):
    return f"{rate:.1f} {unit}"
  return f"{rate:.3g} {unit}"


def _cells(row: Row) -> list[str]:
  return [
    row.section,
    row.what,
    "" if row.seconds is None else format_seconds(row.seconds),
    "" if row.rate is None else format_rate(row.rate, row.rate_unit),
    "" if row.ratio is None else f"{row.ratio:.2f} ({row.ratio_of})",
    "" if row.accuracy is None else f"{row.accuracy:.4f}",
    row.note,
  ]


def row_text(row: Row) -> str:
  """A progress line for one row."""
  return "  ".join(c for c in _cells(row)[1:] if c)


HEADER = ("section", "what", "time", "rate", "ratio", "test acc", "note")


def markdown_table(sections: dict[str, Section]) -> str:
  """All rows of all sections as one markdown table."""
  lines = [
    "| " + " | ".join(HEADER) + " |",
    "|---|---|---:|---:|---:|---:|---|",
  ]
  for section in sections.values():
    for row in section.rows:
      lines.append("| " + " | ".join(_cells(row)) + " |")
  return "\n".join(lines)


def notes_text(sections: dict[str, Section]) -> str:
  """Every section's notes, one ``- section: note`` line each."""
  return "\n".join(
    f"- {name}: {note}"
    for name, section in sections.items()
    for note in section.notes
  )


def to_json(header: dict, sections: dict[str, Section]) -> dict:
  """``{**header, "sections": {name: {"rows": [...], "notes": [...]}}}``."""
  return {
    **header,
    "sections": {
      name: {"rows": [r.to_json() for r in s.rows], "notes": s.notes}
      for name, s in sections.items()
    },
  }


def write_json(path: str, obj: dict) -> str:
  """Writes ``obj`` to ``path`` atomically as strict JSON (NaN -> null),
  creating its folder.
  """
  folder = os.path.dirname(path)
  if folder:
    os.makedirs(folder, exist_ok=True)
  io.write_json(path, obj)
  return path
