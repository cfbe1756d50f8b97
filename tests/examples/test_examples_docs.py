"""README.md and docs/: the two set-up commands, and snippets that must keep working."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from flowcraft_core import load_blueprint

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
GUIDE = (REPO / "docs" / "guide.md").read_text(encoding="utf-8")
CLI_DOC = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_readme_starts_with_a_title_a_sentence_and_exactly_two_commands() -> None:
    lines = README.splitlines()
    assert lines[0] == "# flowcraft"
    assert lines[1] == ""
    assert lines[2].endswith(".") and not lines[2].startswith(("#", "`"))
    first_block = code_blocks(README, "bash")[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert README.index(first_block) < README.index("## ")


def test_scripts_named_by_the_readme_exist() -> None:
    for script in ("demo.sh", "test.sh", "bootstrap.sh"):
        assert (REPO / "scripts" / script).is_file()


def test_demo_script_runs_the_main_example_as_documented() -> None:
    demo = (REPO / "scripts" / "demo.sh").read_text()
    command = demo[demo.index('exec "$ROOT/.venv/bin/flowcraft"') :].replace("\\\n", " ")
    words = shlex.split(command.splitlines()[0])
    assert words[2:5] == ["run", "blueprints/order_processing/order-processing.yaml", "--registry"]
    assert words[5] == "blueprints.order_processing.nodes:registry"
    assert words[6] == "--context"
    assert (REPO / words[3]).is_file()
    # the test suite runs exactly this command (tests/cli/cli_support.py)
    support = (REPO / "tests" / "cli" / "cli_support.py").read_text()
    assert f"DEMO_CONTEXT = '{words[7]}'" in support


@pytest.mark.parametrize(
    "block",
    [b for b in code_blocks(README, "yaml") + code_blocks(GUIDE, "yaml") if b.startswith("id:")],
)
def test_blueprint_snippets_load(block: str) -> None:
    load_blueprint(block)


def test_every_linked_file_exists() -> None:
    for doc, base in ((README, REPO), (GUIDE, REPO / "docs"), (CLI_DOC, REPO / "docs")):
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc):
            if "://" not in target:
                assert (base / target).exists(), target
