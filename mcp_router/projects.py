"""Projects by their real folder, not Claude Code's encoded name for it.

Claude Code files a session's transcripts under ``~/.claude/projects/<key>``, where the key is the folder
the session started in with every character other than a letter or digit turned into ``-``
(``/home/user/code/my-api`` -> ``-home-user-code-my-api``). That cannot be decoded (was ``-`` a slash,
a dot or a dash?), but each transcript line carries the real ``cwd``: the store keeps every distinct
(key, cwd) pair in ``project_paths``, and the folder shown for a key is the cwd that encodes to it (the
session's starting folder, not a subfolder it moved to), else the shortest one seen.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
MAX_KEY = 200
_HOMES = re.compile(r"^(?:/home/|/Users/|[A-Za-z]:\\Users\\)")


def encode(path: str) -> str:
    """Claude Code's project key for a folder, up to its cut: a character outside the BMP (an emoji) is two
    UTF-16 code units to JavaScript, so two dashes. A key over ``MAX_KEY`` characters Claude Code cuts to
    ``MAX_KEY`` and suffixes with ``-`` and a hash of its own, which ``matches`` allows for."""
    return _NOT_ALNUM.sub(lambda match: "--" if ord(match.group(0)) > 0xFFFF else "-", path)


def matches(key: str, path: str) -> bool:
    """Whether ``key`` is Claude Code's key for the folder ``path``."""
    full = encode(path)
    return key == full or (len(full) > MAX_KEY and key.startswith(full[:MAX_KEY] + "-"))


def choose(key: str, paths: list[str]) -> str:
    """The folder to show for ``key`` among the cwds seen under it."""
    return min(paths, key=lambda path: (not matches(key, path), len(path), path))


def project_paths(conn: sqlite3.Connection) -> dict[str, str]:
    """Every project key with a known folder -> that folder (absolute, as the transcripts wrote it)."""
    seen: dict[str, list[str]] = {}
    for key, path in conn.execute("SELECT project, path FROM project_paths"):
        seen.setdefault(key, []).append(path)
    return {key: choose(key, paths) for key, paths in seen.items()}


def short_path(path: str, home: str | None = None) -> str:
    """A folder as people write it: ``~/code/api`` under this user's home, ``~alice/code/api`` under
    another user's home beside it (a team ledger), anything else as it is. Only homes in the folder that holds
    this user's (else ``/home``) become ``~name``: ``/Users/bob`` stays as it is on Linux, so two folders never
    look alike."""
    home = (home if home is not None else str(Path.home())).rstrip("/\\")
    if home and (path == home or path.startswith((home + "/", home + "\\"))):
        return "~" + path[len(home):]
    homes = next((m.group(0) for m in [_HOMES.match(home)] if m), "/home/")
    if path.startswith(homes) and len(path) > len(homes):
        return "~" + path[len(homes):]
    return path
