"""The README and docs/ as a newcomer reads them: the README's first code block is the two commands
(and .ci/run runs the second), the README stays short, every `inv` command in a code block names a
task and flags that exist, and every relative link leads to a file."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from openi_tasks.collection import namespace

from .conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
CORE_FLAGS = {"-T", "--command-timeout", "-c", "--config", "-d", "--debug"}


def code_blocks(path: Path) -> list[list[str]]:
    """The commands of each ```sh block: one per line, comments dropped, continuations joined."""
    blocks = re.findall(r"```sh\n(.*?)```", path.read_text(), re.S)
    result = []
    for block in blocks:
        text = block.replace("\\\n", " ")
        result.append([line.split("  #")[0].split(" # ")[0].strip() for line in text.splitlines()
                       if line.strip() and not line.strip().startswith("#")])
    return result


def test_the_readmes_first_code_block_is_two_commands_and_ci_runs_the_second():
    first = code_blocks(ROOT / "README.md")[0]
    assert first == ["./quickstart", ".venv/bin/python -m pytest -q"], first
    assert (ROOT / "quickstart").stat().st_mode & 0o111
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"\n{first[1]}\n" in ci, "the README's test command is not what .ci/run runs"


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines < 250, lines


def inv_commands() -> list[tuple[Path, str]]:
    found = []
    for path in DOCS:
        for block in code_blocks(path):
            for command in block:
                for part in command.split("&&"):
                    words = part.split()
                    if words and words[0] in ("inv", "openi", ".venv/bin/inv"):
                        found.append((path, part.strip()))
    return found


@pytest.mark.parametrize("path, command", inv_commands(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_every_documented_command_names_a_task_and_flags_that_exist(path, command):
    words = shlex.split(command)[1:]
    while words and words[0].startswith("-"):  # Invoke's own flags before the task
        flag = words.pop(0)
        assert flag.split("=")[0] in CORE_FLAGS | {"--list", "-l", "-h", "--help"}, (path.name, command)
        if flag in ("-T", "-c") and words:
            words.pop(0)
        if flag in ("-h", "--help", "--list", "-l"):
            break
    if not words:
        return
    task = namespace[words[0]]
    flags = set()
    for argument in task.get_arguments():
        flags |= {f"--{n}" for n in argument.names if len(n) > 1} | {f"-{n}" for n in argument.names if len(n) == 1}
        if argument.kind is bool:
            flags |= {f"--no-{n}" for n in argument.names if len(n) > 1}
    for word in words[1:]:
        if word.startswith("-"):
            assert word.split("=")[0] in flags, f"{path.name}: `{command}`: {word} is not a flag of {words[0]}"


def test_every_relative_link_leads_to_a_file():
    missing = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            if not (path.parent / target).exists():
                missing.append(f"{path.relative_to(ROOT)}: {target}")
    assert not missing, missing
