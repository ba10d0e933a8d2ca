"""Configuration: ``~/.config/mcp-router/config.toml`` (or ``$MCP_ROUTER_CONFIG``) plus ``MCP_ROUTER_*``.

Every key can be overridden by an environment variable named ``MCP_ROUTER_<KEY>`` (upper case):
lists are comma-separated (``allowed_roots`` uses the OS path separator), tables are JSON. Errors
name the key and the problem in one line. This module uses only the standard library because the
hook, which must start in a few milliseconds, reads it too.

    monthly_cap_usd = 100.0            # 0 = no cap
    alert_thresholds = [0.5, 0.8, 1.0] # fractions of the cap at which the session is told, once each
    main_model = "sonnet"              # what delegation is compared against in saved_usd
    delegate_model = "haiku"
    fallback_model = ""                # tried when the delegate model is overloaded
    allowed_roots = []                 # directories delegate_to_haiku may read; default: the working dir
    max_file_bytes = 2_000_000         # per call, all files together
    max_input_tokens = 0               # 0 = the delegate model's context window
    api_timeout_seconds = 50.0
    api_max_retries = 3
    keep_prompts = false               # true: keep the text of each prompt, not only its routing decision
    team_db_url = ""                   # postgresql://… of the team database (password: ~/.pgpass or PGPASSWORD)
    user = ""                          # who this machine's rows belong to there; default: git user.email
    machine = ""                       # this machine's name there; default: the host name
    advice = "on"                      # per-prompt routing advice: "on", "quiet" (the model only), "off"
    advice_skip = []                   # categories never advised on, e.g. ["summarize", "hard_debugging"]
    uncertain_below = 0.67             # below this probability the router says it is unsure (default: the policy's)
    [routing]                          # category = "haiku" | "sonnet" | "opus"
    [pricing.models."claude-foo-1"]    # input = …, output = …, cache_read = …, cache_write_5m = …, …
    [pricing.aliases]                  # name = "model-id"
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ENV_PREFIX = "MCP_ROUTER_"
TIERS = ("haiku", "sonnet", "opus")
MAX_CONTEXT_TOKENS = 10**12  # far beyond every window; a larger count is a mistake (10**400 overflowed a float)
ADVICE_MODES = ("on", "quiet", "off")
MAX_CAP_USD = 1e9  # a monthly cap above this is a typo, and keeps the arithmetic on it exact


@dataclass(frozen=True)
class Config:
    monthly_cap_usd: float = 0.0
    alert_thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)
    main_model: str = "sonnet"
    delegate_model: str = "haiku"
    fallback_model: str = ""
    allowed_roots: tuple[str, ...] = ()
    max_file_bytes: int = 2_000_000
    max_input_tokens: int = 0
    api_timeout_seconds: float = 50.0
    api_max_retries: int = 3
    keep_prompts: bool = False
    team_db_url: str = ""
    user: str = ""
    machine: str = ""
    advice: str = "on"
    advice_skip: tuple[str, ...] = ()
    uncertain_below: float | None = None  # None: the built-in policy's
    routing: dict[str, Any] = field(default_factory=dict)
    pricing: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def load(cls, path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
        """Read the config file (missing is fine) and apply ``MCP_ROUTER_*`` overrides."""
        env = os.environ if environ is None else environ
        config_path = Path(path) if path else default_config_path(env)
        chosen = "config file" if path else f"{ENV_PREFIX}CONFIG" if env.get(f"{ENV_PREFIX}CONFIG") else ""
        if chosen and not config_path.is_file():
            problem = "is a folder, not a file" if config_path.is_dir() else "does not exist"
            raise ConfigError(f"{chosen} {config_path} {problem}")
        values: dict[str, Any] = {}
        if config_path.is_file():
            import tomllib  # only when there is a file: the hook starts faster without it

            try:
                values = tomllib.loads(config_path.read_text("utf-8-sig"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None
            except OSError as exc:
                raise ConfigError(f"{config_path}: cannot be read: {exc.strerror or exc}") from None
        where = str(config_path)
        known = {f.name for f in fields(cls)} - {"source"}
        for key in values:
            if key not in known:
                raise ConfigError(f"{where}: {key}: unknown key (known: {', '.join(sorted(known))})")
        sources = dict.fromkeys(values, where)
        for name in known:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _from_env(name, raw)
                sources[name] = ENV_PREFIX + name.upper()
        checked = {name: _check(name, value, sources[name]) for name, value in values.items()}
        models = [name for name in ("main_model", "delegate_model", "fallback_model") if checked.get(name)]
        if models:
            from .pricing import Catalog

            catalog = Catalog.load(checked.get("pricing"))
            for name in models:
                if catalog.resolve(checked[name]) is None:
                    close = catalog.suggest(checked[name])
                    hint = f"; closest known: {', '.join(close)}" if close else " (see mcp-router pricing)"
                    raise ConfigError(f"{sources[name]}: {name}: unknown model {checked[name]!r}{hint}")
        if checked.get("advice_skip"):  # checked here, not only by the advice hook, whose errors nobody sees
            from .routing import load_policy

            categories = sorted(load_policy()["categories"])
            if unknown := [name for name in checked["advice_skip"] if name not in categories]:
                raise ConfigError(f"{sources['advice_skip']}: advice_skip: unknown category {unknown[0]!r} "
                                  f"(known: {', '.join(categories)})")
        return cls(**checked, source=where)


def default_config_path(env: os._Environ[str] | dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("MCP_ROUTER_CONFIG"):
        return Path(env["MCP_ROUTER_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mcp-router" / "config.toml"


def default_db_path(env: os._Environ[str] | dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("MCP_ROUTER_DB"):
        return Path(env["MCP_ROUTER_DB"]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mcp-router" / "usage.db"


def default_projects_dir(env: os._Environ[str] | dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("CLAUDE_CONFIG_DIR") or str(Path.home() / ".claude")
    return Path(base).expanduser() / "projects"


def db_path_from_argv(argv: list[str]) -> Path:
    """``--db PATH`` / ``--db=PATH`` for the commands that run without click (hook, statusline)."""
    for index, arg in enumerate(argv):
        if arg == "--db" and index + 1 < len(argv):
            return Path(argv[index + 1]).expanduser()
        if arg.startswith("--db="):
            return Path(arg.removeprefix("--db=")).expanduser()
    return default_db_path()


def _from_env(name: str, raw: str) -> Any:
    if name in ("routing", "pricing"):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}: expected a JSON object: {exc}") from None
    if name == "allowed_roots":
        return [part for part in raw.split(os.pathsep) if part]
    if name == "keep_prompts":
        return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(raw.lower(), raw)
    if name in ("alert_thresholds", "advice_skip"):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _number(name: str, value: Any, where: str, kind: type) -> Any:
    if isinstance(value, str):
        try:
            value = kind(value)
        except ValueError:
            pass
    not_whole = kind is int and isinstance(value, float) and not (math.isfinite(value) and value.is_integer())
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not_whole
            or (isinstance(value, float) and not math.isfinite(value))):
        expected = "a whole number" if kind is int else "a number" if isinstance(value, str) else "a finite number"
        raise ConfigError(f"{where}: {name}: expected {expected}, got {value!r}")
    if value < 0:
        raise ConfigError(f"{where}: {name}: must not be negative, got {value!r}")
    return kind(value)


def _check(name: str, value: Any, where: str) -> Any:
    if name == "monthly_cap_usd":
        cap = _number(name, value, where, float)
        if cap > MAX_CAP_USD:
            raise ConfigError(f"{where}: {name}: at most {MAX_CAP_USD:,.0f} USD, got {value!r} (0 = no cap)")
        if 0 < cap < 0.01:
            raise ConfigError(f"{where}: {name}: at least 0.01 USD (a cent), got {value!r} (0 = no cap)")
        return cap
    if name == "api_timeout_seconds":
        return _number(name, value, where, float)
    if name == "uncertain_below":
        if (bar := _number(name, value, where, float)) > 1:
            raise ConfigError(f"{where}: {name}: a probability from 0 to 1, got {value!r}")
        return bar
    if name in ("max_file_bytes", "max_input_tokens", "api_max_retries"):
        return _number(name, value, where, int)
    if name == "keep_prompts":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {name}: expected true or false, got {value!r}")
        return value
    if name in ("main_model", "delegate_model", "fallback_model"):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name}: expected a model id or alias, got {value!r}")
        if not value.strip() and name != "fallback_model":  # an empty fallback is the default: none
            raise ConfigError(f"{where}: {name}: is empty: give a model id or alias (see mcp-router pricing),"
                              " or remove it for the default")
        return value
    if name in ("team_db_url", "user", "machine"):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name}: expected a string")
        return value
    if name == "alert_thresholds":
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {name}: expected a list of fractions such as [0.5, 0.8, 1.0]")
        thresholds = [_number(name, item, where, float) for item in value]
        if any(t <= 0 for t in thresholds):
            raise ConfigError(f"{where}: {name}: fractions of the cap must be above 0, got {value!r}")
        return tuple(sorted(set(thresholds)))
    if name == "advice":
        if value not in ADVICE_MODES:
            raise ConfigError(f"{where}: advice: expected one of {', '.join(ADVICE_MODES)}, got {value!r}")
        return value
    if name == "advice_skip":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{where}: {name}: expected a list of routing categories such as [\"summarize\"]")
        return tuple(value)
    if name == "allowed_roots":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{where}: {name}: expected a list of directory paths")
        return tuple(value)
    if name == "routing":
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: routing: expected a table of category = tier")
        for category, tier in value.items():
            if tier not in TIERS:
                raise ConfigError(f"{where}: routing.{category}: expected one of {', '.join(TIERS)}, got {tier!r}")
        return dict(value)
    if name == "pricing":
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: pricing: expected a table with 'models' and/or 'aliases'")
        from .pricing import Catalog

        try:
            Catalog.load(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return dict(value)
    raise AssertionError(name)  # unreachable: keys are checked against the dataclass fields first
