"""README.md's commands run as written, in the ``.venv`` that ``make`` builds."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def shell_commands(text: str) -> list[str]:
  """The commands of the ```sh blocks, continuation lines joined."""
  commands = []
  for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
    commands += block.replace("\\\n", " ").splitlines()
  return [c.strip() for c in commands if c.strip()]


def test_commands_run_the_venv_python():
  """A bare ``python`` is not the ``.venv`` the README installs into (e.g.
  ``mnist1d``), so it fails with ModuleNotFoundError; only the GPU line,
  run on another machine, may use its own.
  """
  commands = shell_commands(README.read_text())
  assert len(commands) > 10
  bare = [
    c
    for c in commands
    if re.search(r"(^|[\s;=])python3?\s", c) and "on a GPU machine" not in c
  ]
  assert bare == []
