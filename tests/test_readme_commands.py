"""The README's command table lists every command, and every option it shows is one the command takes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelreg.cli import command_parser
from modelreg.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def _table() -> dict[str, str]:
    """``{command: its row's usage cell}`` from the table under "## The command line"."""
    section = (ROOT / "README.md").read_text().split("## The command line", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `([a-z]+)([^`]*)`", line)
        if match:
            rows[match.group(1)] = line.split(" | ")[0]
    return rows


def test_every_command_has_a_row():
    assert set(COMMANDS) <= set(_table())


@pytest.mark.parametrize("command", COMMANDS)
def test_the_options_a_row_shows_are_the_commands_own(command):
    row = _table().get(command)
    if row is None:
        pytest.skip(f"no row for {command}")  # test_every_command_has_a_row says so
    known = {option for action in command_parser(command)._actions for option in action.option_strings}
    shown = set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", row))
    assert shown <= known, f"{command}: the README shows {sorted(shown - known)}, which it does not take"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_value_has_a_short_name_and_every_option_a_help(command):
    parser = command_parser(command)
    for action in parser._actions:
        if action.option_strings and action.nargs != 0 and action.choices is None:
            shown = action.metavar or action.dest.upper()
            assert "_" not in shown, f"{command} {action.option_strings[-1]}: shows {shown}; give it a metavar"
        assert action.help, f"{command} {action.option_strings or action.dest}: no help"
