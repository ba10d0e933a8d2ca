"""The README's quick start, run verbatim on a fresh HOME with an externally managed Python (PEP 668).

Debian's own /usr/bin/python3 carries the EXTERNALLY-MANAGED marker, so a plain `pip install` is refused
there; both quick-start commands must still work as written. The second command is the whole test suite:
here PYTEST_ADDOPTS narrows its pytest run to one small file, so it checks the installs, not the suite again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REAL_CLAUDE_CODE
from .test_plugin import _checkout

REPO = Path(__file__).resolve().parents[1]


def _externally_managed_python() -> Path | None:
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if not candidate or not Path(candidate).exists():
            continue
        probe = subprocess.run([candidate, "-c", "import sys, sysconfig; print(sys.version_info >= (3, 11)); "
                                "print(sysconfig.get_path('stdlib'))"], capture_output=True, text=True)
        if probe.returncode:
            continue
        new_enough, stdlib = probe.stdout.split("\n")[:2]
        if new_enough == "True" and (Path(stdlib) / "EXTERNALLY-MANAGED").exists():
            return Path(candidate)
    return None


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Quick start\n+```bash\n(.*?)```", text, re.S)
    assert block, "the README has a quick start block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_two_commands() -> None:
    assert len(quick_start_commands()) == 2


@pytest.mark.timeout(1800)  # its two commands get 600 s + 900 s
@pytest.mark.skipif(_externally_managed_python() is None and os.environ.get("CI") != "true",
                    reason="no Python >= 3.11 marked EXTERNALLY-MANAGED here (Debian's python3 is one)")
def test_quick_start_on_an_externally_managed_python(tmp_path: Path, isolated_user: Path) -> None:
    python = _externally_managed_python()
    assert python, "CI runs on Debian, whose python3 is externally managed"
    refused = subprocess.run([str(python), "-m", "pip", "install", "--dry-run", "six"], capture_output=True, text=True)
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr
    home = isolated_user
    shutil.copytree(REAL_CLAUDE_CODE / "projects", home / ".claude" / "projects")
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3").symlink_to(python)
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join([str(shims), *(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)])
    env = {**os.environ, "HOME": str(home), "PATH": path, "PYTEST_ADDOPTS": "tests/test_pricing.py -q"}
    for var in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_CURRENT_TEST"):
        env.pop(var, None)
    checkout = _checkout(tmp_path / "checkout")
    npm = REPO / ".ci" / "npm"
    if npm.exists():  # the npm step then finds its packages in place, as on a re-run
        shutil.copytree(npm, checkout / ".ci" / "npm", symlinks=True)

    install_and_report, run_tests = quick_start_commands()
    first = subprocess.run(["bash", "-c", install_and_report], cwd=checkout, env=env, capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (home / ".local" / "bin" / "mcp-router").exists()
    assert "Claude Code usage" in first.stdout or "latest activity" in first.stdout, first.stdout

    second = subprocess.run(["bash", "-c", run_tests], cwd=checkout, env=env, capture_output=True, text=True,
                            timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert re.search(r"\d+ passed", second.stdout), second.stdout[-2000:]
