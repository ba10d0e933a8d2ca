#!/bin/sh
# Installs the mcp-router command for this user from this folder, on any Python >= 3.11 — also one that is
# "externally managed" (PEP 668: Debian 12+, Ubuntu 24.04, Homebrew), where `pip install` is refused.
# It uses uv or pipx when you have them, else a private virtual environment; either way the command ends up
# in ~/.local/bin (or where uv/pipx are told to put commands). Run it again to upgrade; `sh install.sh
# --uninstall` removes it, after `mcp-router uninstall` has taken it out of Claude Code's files.
set -eu
cd "$(dirname "$0")"
bin_dir="$HOME/.local/bin"
data_dir="${XDG_DATA_HOME:-$HOME/.local/share}/mcp-router"
venv="$data_dir/venv"

if [ "${1:-}" = "--uninstall" ]; then
    for command in "$bin_dir/mcp-router" "$venv/bin/mcp-router" "$(command -v mcp-router 2>/dev/null || true)"; do
        if [ -n "$command" ] && [ -x "$command" ] && "$command" --version >/dev/null 2>&1; then
            "$command" uninstall || echo "could not take mcp-router out of Claude Code's files: run 'mcp-router uninstall' yourself" >&2
            break
        fi
    done
    if command -v uv >/dev/null 2>&1 && uv tool list 2>/dev/null | grep -q '^mcp-router '; then uv tool uninstall mcp-router; fi
    if command -v pipx >/dev/null 2>&1 && pipx list --short 2>/dev/null | grep -q '^mcp-router '; then pipx uninstall mcp-router; fi
    if [ -L "$bin_dir/mcp-router" ]; then rm -f "$bin_dir/mcp-router"; fi
    rm -rf "$venv"
    echo "mcp-router removed (your usage database in $data_dir is kept)"
    exit 0
fi

python=""
found=""
for candidate in python3 python3.14 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1; then
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            python="$candidate"; break
        fi
        [ -n "$found" ] || found="$(command -v "$candidate") is $("$candidate" --version 2>&1 || echo 'not runnable')"
    fi
done
if [ -z "$python" ]; then
    echo "mcp-router needs Python 3.11 or newer; ${found:-no python3 was found on PATH}" >&2
    exit 1
fi

if command -v uv >/dev/null 2>&1; then
    echo "installing with uv tool ..."
    uv tool install --quiet --force --python "$python" .
    installed="${UV_TOOL_BIN_DIR:-${XDG_BIN_HOME:-$bin_dir}}/mcp-router"
elif command -v pipx >/dev/null 2>&1; then
    echo "installing with pipx ..."
    pipx install --force --python "$python" . >/dev/null
    installed="${PIPX_BIN_DIR:-$bin_dir}/mcp-router"
else
    # Build the new environment beside the old one and swap only when it works: a failed upgrade (offline,
    # a build error) leaves the working install as it was.
    new="$venv.new"
    rm -rf "$new"
    if ! "$python" -m venv "$new" 2>/dev/null; then
        rm -rf "$new"
        echo "could not create a virtual environment with $python: install its venv module (Debian/Ubuntu: apt install python3-venv) or pipx, then run this again" >&2
        exit 1
    fi
    echo "installing into $venv (a minute or two: pip is downloading the dependencies) ..."
    if ! "$new/bin/python" -m pip install --quiet --disable-pip-version-check --progress-bar off . ||
        ! "$new/bin/mcp-router" --version >/dev/null; then
        rm -rf "$new"
        echo "installing failed (see pip's message above); the previous install, if any, is unchanged" >&2
        exit 1
    fi
    rm -rf "$venv.old"
    if [ -e "$venv" ]; then mv "$venv" "$venv.old"; fi
    mv "$new" "$venv"
    rm -rf "$venv.old"
    # A venv's scripts name its own path: rewrite them for the final location.
    for script in "$venv"/bin/*; do
        if [ -f "$script" ] && [ ! -L "$script" ] && head -c 2 "$script" | grep -q '#!'; then
            sed -i.bak "s|$new/|$venv/|g" "$script" && rm -f "$script.bak"
        fi
    done
    sed -i.bak "s|$new|$venv|g" "$venv/pyvenv.cfg" 2>/dev/null && rm -f "$venv/pyvenv.cfg.bak"
    mkdir -p "$bin_dir"
    ln -sf "$venv/bin/mcp-router" "$bin_dir/mcp-router"
    installed="$bin_dir/mcp-router"
fi

if ! version="$("$installed" --version 2>&1)"; then
    echo "installed, but $installed does not run: $version" >&2
    exit 1
fi
echo "installed: $installed ($version)"
if [ "$installed" != "$bin_dir/mcp-router" ] && [ ! -e "$bin_dir/mcp-router" ]; then
    # Claude Code's plugin looks in ~/.local/bin when PATH lacks the command.
    mkdir -p "$bin_dir"
    ln -sf "$installed" "$bin_dir/mcp-router"
fi
case ":$PATH:" in
    *":$(dirname "$installed"):"*) ;;
    *) echo "add $(dirname "$installed") to your PATH to run it as plain 'mcp-router' (Claude Code's plugin finds it in ~/.local/bin either way)" ;;
esac
