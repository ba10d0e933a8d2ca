"""Independent probe of issue 16's plugin move (plugin/ as the marketplace's one plugin, the launcher's fix line).

The launcher (plugin/scripts/launch) and the real Claude Code CLI (2.1.328) are the real ones; a marketplace is
served over git's smart HTTP from 127.0.0.1 (git http-backend), as a GitHub marketplace would be cloned.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from .standin_api import StandinAPI
from .test_e2e_claude_code import CLAUDE, REPO
from .test_plugin import _checkout, _claude_env

SYSTEM_BIN = os.pathsep.join(["/usr/bin", "/bin"])
HOSTILE = ["new\nline", "tab\there", "back\\nslash", "stop\\cthere", 'q"uote\\back', "sp ace é $(id) `id`;|&*"]


def _launch(script: Path, command: str, home: Path, path: str = SYSTEM_BIN) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", str(script), command], input="{}", env={"HOME": str(home), "PATH": path},
                          capture_output=True, text=True, timeout=30)


def _one_message(done: subprocess.CompletedProcess) -> str:
    """`check` must print one line of valid JSON, exit 0 and write nothing else."""
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.endswith("\n") and done.stdout.count("\n") == 1, repr(done.stdout)
    message = json.loads(done.stdout)["systemMessage"]
    assert isinstance(message, str) and "\n" not in message and "\t" not in message
    return message


def _plugin_in(checkout: Path) -> Path:
    shutil.copytree(REPO / "plugin", checkout / "plugin")
    (checkout / "install.sh").write_text("")
    return checkout / "plugin" / "scripts" / "launch"


@pytest.mark.parametrize("name", HOSTILE)
def test_check_is_one_json_line_whatever_the_checkout_is_called(tmp_path: Path, name: str) -> None:
    """dash's echo expands backslashes (\\n: a second line, \\c: the rest cut off) and the JSON escaping left raw
    newlines and tabs in the string: Claude Code got no valid JSON and the user saw nothing."""
    checkout = tmp_path / name
    launch = _plugin_in(checkout)
    message = _one_message(_launch(launch, "check", tmp_path / "home"))
    shown = str(checkout).replace("\n", "?").replace("\t", "?")
    assert f"run 'sh install.sh' in {shown}, then restart Claude Code" in message, message
    served = _launch(launch, "serve", tmp_path / "home")
    assert served.returncode == 1 and served.stdout == ""
    assert served.stderr.count("\n") == 1 and shown in served.stderr, repr(served.stderr)


def test_check_with_an_empty_path_still_says_what_to_do(tmp_path: Path) -> None:
    """With PATH empty, dirname and sed were not found: `{"systemMessage": ""}` and "not found" on stderr."""
    launch = _plugin_in(tmp_path / "checkout")
    message = _one_message(_launch(launch, "check", tmp_path / "home", path=""))
    assert message.startswith("mcp-router is not installed") and str(tmp_path / "checkout") in message
    hook = _launch(launch, "hook", tmp_path / "home", path="")
    assert (hook.returncode, hook.stdout, hook.stderr) == (0, "", "")


def _cached(config: Path, marketplaces: dict[str, Any] | str | None) -> Path:
    """The plugin as a marketplace install leaves it: <config>/plugins/cache/<marketplace>/<plugin>/<version>, with
    known_marketplaces.json written as Claude Code writes it (JSON.stringify with 2 spaces)."""
    root = config / "plugins" / "cache" / "mcp-router" / "mcp-router" / "0.1.0"
    shutil.copytree(REPO / "plugin", root)
    known = config / "plugins" / "known_marketplaces.json"
    if isinstance(marketplaces, dict):
        known.write_text(json.dumps(marketplaces, indent=2, ensure_ascii=False))
    elif isinstance(marketplaces, str):
        known.write_text(marketplaces)
    return root / "scripts" / "launch"


def _entry(location: Path) -> dict[str, Any]:
    return {"source": {"source": "directory", "path": str(location)}, "installLocation": str(location),
            "lastUpdated": "2026-11-30T03:53:19.218Z"}


@pytest.mark.parametrize("name", HOSTILE)
def test_cached_launcher_names_a_checkout_whose_path_json_escapes(tmp_path: Path, name: str) -> None:
    """known_marketplaces.json holds the path JSON-escaped (\\" \\\\ \\n \\t): read raw, it named no folder and the
    user got the generic "your mcp-router repository" instead of where to run install.sh."""
    checkout = tmp_path / name
    checkout.mkdir()
    (checkout / "install.sh").write_text("")
    launch = _cached(tmp_path / "config", {"mcp-router": _entry(checkout)})
    message = _one_message(_launch(launch, "check", tmp_path / "home"))
    shown = str(checkout).replace("\n", "?").replace("\t", "?")
    assert f"run 'sh install.sh' in {shown}, then restart Claude Code" in message, message


@pytest.mark.parametrize("known", [None, "", "{not json", '{"mcp-router": {"installLocation": 7}}', "[]",
                                   '{\n  "mcp-router": {\n    "installLocation": "/nonexistent"\n  }\n}'])
def test_cached_launcher_without_a_usable_marketplace_record_gives_the_generic_line(tmp_path: Path,
                                                                                    known: str | None) -> None:
    launch = _cached(tmp_path / "config", known)
    message = _one_message(_launch(launch, "check", tmp_path / "home"))
    assert message.endswith("run 'sh install.sh' in your mcp-router repository (the marketplace you added), "
                            "then restart Claude Code"), message


def test_cached_launcher_reads_only_its_own_marketplace_entry(tmp_path: Path) -> None:
    """An mcp-router entry without installLocation took the next marketplace's folder (any repository with an
    install.sh) as where to run install.sh."""
    other = tmp_path / "someone-elses-tool"
    other.mkdir()
    (other / "install.sh").write_text("")
    entry = _entry(other)
    del entry["installLocation"]
    launch = _cached(tmp_path / "config", {"mcp-router": entry, "other": _entry(other)})
    message = _one_message(_launch(launch, "check", tmp_path / "home"))
    assert str(other) not in message, message


def _git_backend(root: Path) -> Any:
    """git's smart HTTP protocol (git http-backend as CGI) for the repositories in ``root``."""
    def app(environ: dict[str, Any], start: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        cgi = {"GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": environ["PATH_INFO"],
               "QUERY_STRING": environ.get("QUERY_STRING", ""), "REQUEST_METHOD": environ["REQUEST_METHOD"],
               "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""), "CONTENT_LENGTH": str(len(body)),
               "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", ""), "REMOTE_ADDR": "127.0.0.1",
               "PATH": os.environ["PATH"]}
        out = subprocess.run(["git", "http-backend"], input=body, env=cgi, capture_output=True, timeout=60).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        fields = [line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line]
        start(next((v for k, v in fields if k.lower() == "status"), "200 OK"),
              [(k, v) for k, v in fields if k.lower() != "status"])
        return [rest]
    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def git_marketplace(tmp_path: Path) -> Iterator[str]:
    """This repository's files as a git remote on 127.0.0.1, as `claude plugin marketplace add <git URL>` clones it."""
    work = _checkout(tmp_path / "work")
    git = ["git", "-c", "user.email=probe@example.invalid", "-c", "user.name=probe"]
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-qm", "marketplace"], cwd=work, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(tmp_path / "served" / "mcp-router.git")],
                   check=True)
    server = make_server("127.0.0.1", 0, _git_backend(tmp_path / "served"), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/mcp-router.git"
    server.shutdown()
    server.server_close()


def _session_start(home: Path, project: Path, path: str) -> tuple[dict[str, Any], list[str]]:
    """A `claude -p` session against the stand-in API: its init event and its SessionStart hooks' output."""
    assert CLAUDE
    project.mkdir(exist_ok=True)
    with StandinAPI() as api:
        env = _claude_env(home, path, ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY="test")
        done = subprocess.run([CLAUDE, "-p", "hello", "--output-format", "stream-json", "--verbose"], cwd=project,
                              env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    init = next(e for e in events if e.get("subtype") == "init")
    starts = [e.get("output", "") for e in events
              if e.get("subtype") == "hook_response" and e.get("hook_event") == "SessionStart"]
    return init, starts


def _add_and_install(home: Path, source: str) -> Path:
    assert CLAUDE
    env = _claude_env(home, os.environ["PATH"])
    for command in (["plugin", "marketplace", "add", source], ["plugin", "install", "mcp-router@mcp-router"]):
        done = subprocess.run([CLAUDE, *command], capture_output=True, text=True, timeout=180, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    installed = json.loads((home / ".claude" / "plugins" / "installed_plugins.json").read_text())
    return Path(installed["plugins"]["mcp-router@mcp-router"][0]["installPath"])


def _ours(init: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    return ([p["path"] for p in init.get("plugins", []) if p.get("name") == "mcp-router"],
            [s["name"] for s in init.get("mcp_servers", [])], init.get("agents", []))


@pytest.mark.e2e
def test_a_git_marketplace_session_runs_the_cached_copy(tmp_path: Path, isolated_user: Path,
                                                        git_marketplace: str) -> None:
    """Added from a git URL (as from GitHub), a session runs the plugin from the cache: its server, hooks and agent,
    and without mcp-router the SessionStart line names the marketplace's clone, where install.sh is."""
    cached = _add_and_install(isolated_user, git_marketplace)
    assert cached.is_relative_to(isolated_user / ".claude" / "plugins" / "cache")
    assert not (cached / "install.sh").exists()
    init, starts = _session_start(isolated_user, tmp_path / "project",
                                  os.pathsep.join([str(Path(CLAUDE or "").parent), SYSTEM_BIN]))
    paths, servers, agents = _ours(init)
    assert paths == [str(cached)], paths
    assert "plugin:mcp-router:mcp-router" in servers and "mcp-router:haiku-reader" in agents
    clone = isolated_user / ".claude" / "plugins" / "marketplaces" / "mcp-router"
    assert (clone / "install.sh").exists()
    assert len(starts) == 1
    message = json.loads(starts[0])["systemMessage"]
    assert f"run 'sh install.sh' in {clone}, then restart Claude Code" in message, message


@pytest.mark.e2e
def test_a_local_marketplace_runs_the_checkout_itself_and_the_readme_says_so(tmp_path: Path,
                                                                              isolated_user: Path) -> None:
    """Added from a local path, Claude Code copies plugin/ into its cache but runs the checkout's plugin/ folder:
    the README said only that the folder is copied, so a user who then moved or deleted the checkout lost the
    server and hooks without a word (the plugin no longer loads, so its SessionStart line cannot run either)."""
    checkout = _checkout(tmp_path / "checkout")
    cached = _add_and_install(isolated_user, str(checkout))
    assert (cached / "scripts" / "launch").exists()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    init, _ = _session_start(isolated_user, tmp_path / "project", path)
    paths, servers, agents = _ours(init)
    assert paths == [str(checkout / "plugin")], paths
    assert "plugin:mcp-router:mcp-router" in servers and "mcp-router:haiku-reader" in agents

    shutil.move(checkout, tmp_path / "moved")
    init, starts = _session_start(isolated_user, tmp_path / "project", path)
    paths, servers, agents = _ours(init)
    assert paths == [] and "plugin:mcp-router:mcp-router" not in servers and "mcp-router:haiku-reader" not in agents
    assert starts == [] or all("mcp-router" not in s for s in starts)
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "runs the plugin from the checkout's `plugin/` folder" in readme
    assert "keep the checkout where it is" in readme
