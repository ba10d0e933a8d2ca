"""mcp-router: make Claude Code cheaper without making it worse."""

from __future__ import annotations

import sys

__version__ = "0.1.0"

# Commands Claude Code runs on every turn start without importing click (or anything heavy).
_FAST_COMMANDS = {"hook": "hook", "statusline": "statusline"}


def main() -> None:
    """Console entry point: ``mcp-router``."""
    args = sys.argv[1:]
    if args and args[0] in _FAST_COMMANDS and not {"-h", "--help"} & set(args):
        from importlib import import_module

        module = import_module(f"{__name__}.{_FAST_COMMANDS[args[0]]}")
        status = module.main(args[1:])
        if args[0] != "hook":
            sys.exit(status)
        # The hook has closed its database and runs on every prompt: skip the interpreter's teardown (a tenth of
        # the advice hook's time).
        sys.stdout.flush()
        sys.stderr.flush()
        import os

        os._exit(status)
    from .cli import cli

    cli()
