"""The README's command reference is the CLI's own --help: run this file with --write to regenerate it."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from click.testing import CliRunner

from mcp_router import install
from mcp_router.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def reference() -> str:
    runner = CliRunner()
    parts = []
    for name in ["", *sorted(cli.commands)]:
        args = [name, "--help"] if name else ["--help"]
        text = runner.invoke(cli, args, prog_name="mcp-router", terminal_width=100).output
        parts.append(f"### `mcp-router{' ' + name if name else ''}`\n\n```\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


def test_readme_reference_matches_help() -> None:
    text = README.read_text()
    current = re.search(f"{START}\n(.*){END}", text, re.S)
    assert current is not None and current.group(1) == reference(), "run: python tests/test_readme.py --write"


def test_example_settings_are_what_install_writes() -> None:
    example = json.loads((ROOT / "claude_settings.example.json").read_text())
    assert {k: example[k] for k in ("hooks", "permissions", "statusLine")} == install.add_to_settings({}, "mcp-router")
    assert example["mcpServers"] == install.add_server({}, "mcp-router")["mcpServers"]


if __name__ == "__main__" and "--write" in sys.argv:
    text = README.read_text()
    README.write_text(re.sub(f"{START}\n.*{END}", lambda _: f"{START}\n{reference()}{END}", text, flags=re.S))
