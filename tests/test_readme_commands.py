"""Every ``scopeml`` command line in the README names a command and options that exist, and the
server's token is created where the server will look for it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer

from scopeml.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def command_lines() -> list[list[str]]:
    """The ``scopeml …`` lines of the README's bash blocks, continuations joined, comments cut."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["scopeml"]:
                lines.append(words[1:])
    return lines


def resolve(words: list[str]) -> tuple[object, list[str]]:
    """The click command a line runs, and the words after its name."""
    command = typer.main.get_command(app)
    while words and hasattr(command, "commands") and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


def test_every_documented_command_and_option_exists():
    lines = command_lines()
    assert len(lines) > 20
    for words in lines:
        command, rest = resolve(words)
        assert not hasattr(command, "commands"), f"no such command: scopeml {' '.join(words)}"
        known = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
        for word in rest:
            option = word.split("=")[0]
            if option.startswith("-") and option != "-":
                assert option in known, f"scopeml {' '.join(words)}: no option {option}"


def test_the_token_is_created_in_the_data_dir_the_server_reads():
    def data_dir(words):
        return words[words.index("--data-dir") + 1] if "--data-dir" in words else "scopeml-data"

    tokens = [data_dir(w) for w in command_lines() if w[:2] == ["admin", "create-token"]]
    served = {data_dir(w) for w in command_lines() if w[:1] == ["serve"]}
    assert tokens and served and set(tokens) <= served
