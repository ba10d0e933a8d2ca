"""Reading files for delegation, safely.

A path is read only if, after resolving ``~``, ``..`` and symlinks, it lies under one of the allowed
roots; no rule of the deny list (``data/denied_paths.toml``: env files, credential stores, keystores, …)
refuses it, even inside a root; it is a regular text file; and the files of one call together stay
under the byte limit, checked with ``stat`` before anything is read. Every refusal raises
``PathRefused`` naming the rule. Secrets inside an allowed file are redacted by ``redact`` before
the text leaves the machine.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import PathRefused

DENY_LIST = Path(__file__).parent / "data" / "denied_paths.toml"


@dataclass(frozen=True)
class DenyRule:
    name: str
    why: str
    names: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def refuses(self, parts: tuple[str, ...]) -> str | None:
        """What on the path (folder names, then the file's name, relative to the root) this rule refuses."""
        lowered = tuple(part.lower() for part in parts)
        for folder in lowered[:-1]:
            if folder in self.dirs:
                return f"{folder}/"
        if any(fnmatch.fnmatchcase(lowered[-1], pattern.lower()) for pattern in self.names):
            return parts[-1]
        joined = "/".join(lowered)
        return next((tail for tail in self.paths if joined == tail or joined.endswith("/" + tail)), None)


@cache
def _deny_list() -> dict[str, Any]:
    import tomllib

    return tomllib.loads(DENY_LIST.read_text("utf-8"))


@cache
def deny_rules() -> tuple[DenyRule, ...]:
    return tuple(DenyRule(r["name"], r["why"], *(tuple(r.get(k, ())) for k in ("names", "dirs", "paths")))
                 for r in _deny_list()["rule"])


def _names_to_check(name: str) -> list[str]:
    """``name``, and the name of the file it is a backup of (``.pgpass.bak`` → ``.pgpass``), if any."""
    names = [name]
    for suffix in _deny_list().get("backup_suffixes", ()):
        star = suffix.find("*")
        stem = name.lower().rfind(suffix.lower() if star < 0 else suffix[:star].lower())
        if stem > 0 and fnmatch.fnmatchcase(name[stem:].lower(), suffix.lower()):
            names.append(name[:stem])
    return names


def resolve_allowed(path: str, roots: list[Path], cwd: Path) -> Path:
    """The real path, if it is under a root and not a secret; else ``PathRefused``."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = cwd / candidate
    try:
        real = candidate.resolve()
    except (OSError, RuntimeError):
        raise PathRefused(f"{path}: cannot be resolved (a symlink loop?)") from None
    real_roots = [root.expanduser().resolve() for root in roots]
    inside = next((root for root in real_roots if real == root or real.is_relative_to(root)), None)
    if inside is None:
        raise PathRefused(f"{path}: outside the allowed roots ({', '.join(map(str, real_roots))}); "
                          "add the folder to allowed_roots in the mcp-router config to allow it")
    relative = real.relative_to(inside).parts or (real.name,)
    names = {real.name, candidate.name}  # a symlink's own name must pass too
    for parts in (relative[:-1] + (name,) for given in names for name in _names_to_check(given)):
        for rule in deny_rules():
            hit = rule.refuses(parts)
            if hit:
                raise PathRefused(f"{path}: refused by the deny rule \"{rule.name}\" ({hit}: {rule.why}); "
                                  "never sent to a model, whatever the allowed roots")
    if not real.exists():
        raise PathRefused(f"{path}: no such file")
    if not real.is_file():
        raise PathRefused(f"{path}: not a regular file")
    if real.stat().st_nlink > 1:
        raise PathRefused(f"{path}: has {real.stat().st_nlink} hard links, and the deny list cannot check the other "
                          "names (one may be a credentials file); delegate a copy of it instead")
    return real


def read_files(paths: list[str], roots: list[Path], cwd: Path, max_bytes: int) -> list[tuple[str, str]]:
    """``(path as given, text)`` for each path; all checks pass before any file is read."""
    resolved = [(path, resolve_allowed(path, roots, cwd)) for path in paths]
    total = 0
    for path, real in resolved:
        total += real.stat().st_size
        if total > max_bytes:
            raise PathRefused(f"{path}: the files of this call exceed max_file_bytes ({max_bytes:,} bytes); "
                              "pass fewer or smaller files, or raise max_file_bytes in the config")
    texts = []
    for path, real in resolved:
        data = real.read_bytes()
        if b"\0" in data[:8192]:
            raise PathRefused(f"{path}: a binary file; only text can be delegated")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise PathRefused(f"{path}: not UTF-8 text; only text can be delegated") from None
        texts.append((path, text))
    return texts
