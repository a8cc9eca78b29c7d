"""The commands of README.md and the docs' guides run as written, in the
``.venv`` that ``make`` builds.
"""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The README and the guides it points to, where the shell commands live.
PAGES = [REPO / "README.md", *sorted((REPO / "docs" / "guides").glob("*.md"))]


def shell_commands(text: str) -> list[str]:
  """The commands of the ```sh blocks, continuation lines joined."""
  commands = []
  for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.S):
    commands += block.replace("\\\n", " ").splitlines()
  return [c.strip() for c in commands if c.strip()]


def test_commands_run_the_venv_python():
  """A bare ``python`` is not the ``.venv`` the README installs into (e.g.
  ``mnist1d``), so it fails with ModuleNotFoundError; only the GPU line,
  run on another machine, may use its own.
  """
  commands = [c for page in PAGES for c in shell_commands(page.read_text())]
  assert len(commands) > 10
  bare = [
    c
    for c in commands
    if re.search(r"(^|[\s;=])python3?\s", c) and "on a GPU machine" not in c
  ]
  assert bare == []
