#!/bin/sh
# Installs the mcp-router command for this user from this folder, on any Python >= 3.11 — also one that is
# "externally managed" (PEP 668: Debian 12+, Ubuntu 24.04, Homebrew), where `pip install` is refused.
# It uses uv or pipx when you have them, else a private virtual environment; either way the command ends up
# in ~/.local/bin. Run it again to upgrade; `sh install.sh --uninstall` removes it.
set -eu
cd "$(dirname "$0")"
bin_dir="$HOME/.local/bin"
venv="${XDG_DATA_HOME:-$HOME/.local/share}/mcp-router/venv"

if [ "${1:-}" = "--uninstall" ]; then
    if command -v uv >/dev/null 2>&1 && uv tool list 2>/dev/null | grep -q '^mcp-router '; then uv tool uninstall mcp-router; fi
    if command -v pipx >/dev/null 2>&1 && pipx list --short 2>/dev/null | grep -q '^mcp-router '; then pipx uninstall mcp-router; fi
    if [ -L "$bin_dir/mcp-router" ]; then rm -f "$bin_dir/mcp-router"; fi
    rm -rf "$venv"
    echo "mcp-router removed (your usage database in ${XDG_DATA_HOME:-$HOME/.local/share}/mcp-router is kept)"
    exit 0
fi

python=""
for candidate in python3 python3.14 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$candidate"; break
    fi
done
if [ -z "$python" ]; then
    echo "mcp-router needs Python 3.11 or newer; none was found on PATH" >&2
    exit 1
fi

if command -v uv >/dev/null 2>&1; then
    uv tool install --quiet --force --python "$python" .
elif command -v pipx >/dev/null 2>&1; then
    pipx install --force --python "$python" . >/dev/null
else
    if ! "$python" -m venv --clear "$venv" 2>/dev/null; then
        echo "could not create a virtual environment with $python: install its venv module (Debian/Ubuntu: apt install python3-venv) or pipx, then run this again" >&2
        exit 1
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check .
    mkdir -p "$bin_dir"
    ln -sf "$venv/bin/mcp-router" "$bin_dir/mcp-router"
fi

echo "installed: $bin_dir/mcp-router ($("$bin_dir/mcp-router" --version))"
case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *) echo "add $bin_dir to your PATH to run it as plain 'mcp-router' (Claude Code's plugin finds it there either way)" ;;
esac
