"""Reading files for delegation, safely.

A path is read only if, after resolving ``~``, ``..`` and symlinks, it lies under one of the allowed
roots; it is not a secret (even inside a root); it is a regular text file; and the files of one call
together stay under the byte limit, checked with ``stat`` before anything is read. Obvious secrets
inside an allowed file (API keys, tokens, private keys) are redacted before the text leaves the
machine. Every refusal raises ``PathRefused`` naming the rule.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from .errors import PathRefused

SECRET_NAMES = (".env", ".env.*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_ed25519*", "id_ecdsa*",
                "id_dsa*", "credentials", "credentials.*", "*credentials*.json", ".netrc", ".npmrc", ".pypirc",
                ".git-credentials", "*.keystore", "secrets.*")
SECRET_DIRS = (".ssh", ".aws", ".gnupg", ".git", ".docker", ".kube")
_SECRET_VALUES = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|\bsk-ant-[A-Za-z0-9_\-]{10,}|\bsk-[A-Za-z0-9]{20,}|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bxox[abpr]-[A-Za-z0-9-]{10,}",
    re.S,
)
_SECRET_ASSIGNMENTS = re.compile(r"(?i)\b(bearer\s+|(?:api[_-]?key|secret|password|token)\s*[:=]\s*['\"]?)"
                                 r"[^\s'\"]{8,}")


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
    relative_parts = real.relative_to(inside).parts
    for part in relative_parts[:-1] + (candidate.name,):
        if part in SECRET_DIRS:
            raise PathRefused(f"{path}: inside {part}/, which holds secrets or repository internals")
    for name in {real.name, candidate.name}:
        if any(fnmatch.fnmatch(name, pattern) for pattern in SECRET_NAMES):
            raise PathRefused(f"{path}: looks like a secret ({name}); refusing to send it to a model")
    if not real.exists():
        raise PathRefused(f"{path}: no such file")
    if not real.is_file():
        raise PathRefused(f"{path}: not a regular file")
    return real


def read_files(paths: list[str], roots: list[Path], cwd: Path, max_bytes: int) -> list[tuple[str, str]]:
    """``(path as given, redacted text)`` for each path; all checks pass before any file is read."""
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
        texts.append((path, redact(text)))
    return texts


def redact(text: str) -> str:
    text = _SECRET_VALUES.sub("[REDACTED]", text)
    return _SECRET_ASSIGNMENTS.sub(lambda m: m.group(1) + "[REDACTED]", text)
