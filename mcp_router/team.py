"""The team database: one PostgreSQL that every developer's machine syncs its ledger to.

``connect`` opens it (the driver, psycopg 3, is the optional ``mcp-router[team]`` extra) and brings its
schema up to date; ``TeamConnection`` lets the report and the budget run their SQL, written once for both
engines, against it. The schema is an append-only list of migrations recorded by name in
``schema_migrations``; a database with a migration this version does not know is refused, so an old
client never writes rows a newer schema reads differently.

What the team database receives: usage numbers, delegation outcomes, cost records, ratings, routing
decisions and routing advice (categories, and a ``/model`` change as the tier it names), each row with the
``user`` and ``machine`` it came from. Never prompt text, delegated task text, notes, error messages, file
content or local paths (see README, "Teams").
"""

from __future__ import annotations

import getpass
import socket
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .config import Config
from .errors import TeamDBError

INSTALL_HINT = "team features need the PostgreSQL driver: pip install 'mcp-router[team]'"
MIGRATE_LOCK = 0x6D6372_01  # pg_advisory_xact_lock keys: one for migrating, one for the team budget
BUDGET_LOCK = 0x6D6372_02
STALLED_CLIENT_SECONDS = 60  # far above any pause of a live client inside a transaction

_USAGE = """
    message_id text NOT NULL, request_id text NOT NULL DEFAULT '', ts double precision NOT NULL, session_id text,
    project text, git_branch text, is_sidechain integer NOT NULL DEFAULT 0, agent_id text, agent_type text,
    model text NOT NULL, raw_model text, input_tokens bigint, output_tokens bigint, cache_read_tokens bigint,
    cache_creation_tokens bigint, cache_creation_5m_tokens bigint, cache_creation_1h_tokens bigint,
    web_search_requests bigint, total_tokens bigint, inference_geo text, service_tier text, speed text,
    cost_usd double precision"""
_OWNER = '"user" text NOT NULL, machine text NOT NULL, ledger_id text NOT NULL'

MIGRATIONS: list[tuple[str, str]] = [
    ("m001_create_tables", f"""
    CREATE TABLE usage_events ({_OWNER}, {_USAGE}, PRIMARY KEY (message_id, request_id));
    -- Usage summed per 15-minute UTC bucket and report key, as in SQLite, plus who and where: sync keeps it in
    -- step set by set, so the team report reads buckets, not responses.
    CREATE TABLE usage_rollup (
        bucket bigint NOT NULL, "user" text NOT NULL, machine text NOT NULL, model text NOT NULL,
        project text NOT NULL, session_id text NOT NULL, agent text NOT NULL, branch text NOT NULL,
        input_tokens bigint NOT NULL DEFAULT 0, output_tokens bigint NOT NULL DEFAULT 0,
        cache_creation_tokens bigint NOT NULL DEFAULT 0, cache_read_tokens bigint NOT NULL DEFAULT 0,
        cache_creation_1h_tokens bigint NOT NULL DEFAULT 0, cost_usd double precision NOT NULL DEFAULT 0,
        messages bigint NOT NULL DEFAULT 0, unpriced_messages bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (bucket, "user", machine, model, project, session_id, agent, branch));
    CREATE TABLE tool_results ({_OWNER}, tool_use_id text PRIMARY KEY, ts double precision, session_id text,
        project text, tool_name text, content_chars bigint, is_sidechain integer);
    CREATE INDEX tool_results_ts ON tool_results (ts, is_sidechain, content_chars);
    CREATE TABLE delegations ({_OWNER}, id text PRIMARY KEY, ts double precision, session_id text, category text,
        model text, main_model text, backend text, input_tokens bigint, output_tokens bigint,
        cache_read_tokens bigint, cache_creation_tokens bigint, cost_usd double precision,
        saved_usd double precision, latency_ms double precision, outcome text);
    CREATE INDEX delegations_ts ON delegations (ts);
    -- Keyed on the machine's ledger and its local id: a delegation's reservation is written here by the
    -- delegation itself (the team budget) and again, identically or settled, by sync.
    CREATE TABLE cost_records ({_OWNER}, local_id bigint NOT NULL, ts double precision, source text, model text,
        input_tokens bigint, output_tokens bigint, cache_read_tokens bigint, cache_creation_tokens bigint,
        task_type text, reserved_usd double precision, cost_usd double precision, state text, delegation_id text,
        PRIMARY KEY (ledger_id, local_id));
    CREATE INDEX cost_records_ts ON cost_records (ts);
    CREATE TABLE feedback ({_OWNER}, local_id bigint NOT NULL, delegation_id text, ts double precision,
        category text, rating text, PRIMARY KEY (ledger_id, local_id));
    CREATE TABLE prompts ({_OWNER}, uuid text PRIMARY KEY, session_id text, ts double precision);
    CREATE TABLE category_overrides (category text PRIMARY KEY, tier text, source text, reason text,
        ts double precision);
    CREATE TABLE settings (key text PRIMARY KEY, value text);
    -- How far each machine's ledger has been synced, table by table: written in the same transaction as the
    -- rows, so a sync killed at any point resumes exactly where the last commit left it.
    CREATE TABLE sync_state (ledger_id text NOT NULL, table_name text NOT NULL, high_water bigint NOT NULL,
        "user" text NOT NULL, machine text NOT NULL, synced_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (ledger_id, table_name));
    """),
    ("m002_reservations_expire_prompts_keep_decisions", """
    -- As in SQLite (its m006): a reservation lapses if its call never settles, a record can be voided, and a
    -- prompt is its routing decision and length.
    ALTER TABLE cost_records ADD COLUMN expires_ts double precision, ADD COLUMN void_ts double precision;
    ALTER TABLE prompts ADD COLUMN tier text, ADD COLUMN category text, ADD COLUMN confidence double precision,
        ADD COLUMN chars bigint;
    """),
    ("m003_create_advice_events", f"""
    -- As in SQLite (its m008): routing advice given, /model changes (the tier only) and guarded delegations.
    CREATE TABLE advice_events ({_OWNER}, uuid text PRIMARY KEY, session_id text, ts double precision, kind text,
        category text);
    CREATE INDEX advice_events_ts ON advice_events (ts);
    CREATE INDEX advice_events_session ON advice_events (session_id, ts);
    -- What the report's advice and haiku-reader figures look up per session (SQLite makes these on the fly).
    CREATE INDEX usage_events_session ON usage_events (session_id, ts);
    CREATE INDEX usage_events_agents ON usage_events (ts) WHERE agent_type IS NOT NULL;
    CREATE INDEX tool_results_session ON tool_results (session_id, ts);
    """),
    ("m004_each_writer_keeps_to_its_own_rows", """
    -- A writer may write only its own rows (README, "Teams"), but keys without the user let one writer take
    -- another's first (ledger ids, local ids and delegation ids are visible to all): the other's sync then failed,
    -- or its row was silently not stored. With the user first in every key, a writer's rows meet only its own.
    -- Each new key holds the old one, so the rows already there fit it.
    ALTER TABLE usage_events DROP CONSTRAINT usage_events_pkey, ADD PRIMARY KEY ("user", message_id, request_id);
    ALTER TABLE tool_results DROP CONSTRAINT tool_results_pkey, ADD PRIMARY KEY ("user", tool_use_id);
    ALTER TABLE delegations DROP CONSTRAINT delegations_pkey, ADD PRIMARY KEY ("user", id);
    ALTER TABLE cost_records DROP CONSTRAINT cost_records_pkey, ADD PRIMARY KEY ("user", ledger_id, local_id);
    ALTER TABLE feedback DROP CONSTRAINT feedback_pkey, ADD PRIMARY KEY ("user", ledger_id, local_id);
    ALTER TABLE prompts DROP CONSTRAINT prompts_pkey, ADD PRIMARY KEY ("user", uuid);
    ALTER TABLE advice_events DROP CONSTRAINT advice_events_pkey, ADD PRIMARY KEY ("user", uuid);
    ALTER TABLE sync_state DROP CONSTRAINT sync_state_pkey, ADD PRIMARY KEY ("user", ledger_id, table_name);
    -- Nor may a writer's own rows take the team's month to date below what the others spent: no negative cost,
    -- and no NaN (PostgreSQL ranks it above every number; a NaN month to date would never reach the cap). The
    -- rollup's sums are floats a sync adds to and takes from, so they may end a rounding error below zero.
    -- NOT VALID: rows already there are not checked (the upgrade never fails on them), rows written from now are.
    ALTER TABLE cost_records ADD CONSTRAINT cost_records_no_negative_cost
        CHECK (cost_usd >= 0 AND cost_usd <> 'NaN' AND reserved_usd >= 0 AND reserved_usd <> 'NaN') NOT VALID;
    ALTER TABLE usage_rollup ADD CONSTRAINT usage_rollup_no_negative_cost
        CHECK (cost_usd >= -1e-9 AND cost_usd <> 'NaN') NOT VALID;
    """),
    ("m005_no_infinite_cost", """
    -- m004 took +Infinity: one writer's row made the team's month to date infinite, and every delegation in the
    -- team was refused. NOT VALID, as there: no upgrade fails on a row already stored.
    ALTER TABLE cost_records ADD CONSTRAINT cost_records_finite_cost
        CHECK (cost_usd <> 'Infinity' AND reserved_usd <> 'Infinity') NOT VALID;
    ALTER TABLE usage_rollup ADD CONSTRAINT usage_rollup_finite_cost CHECK (cost_usd <> 'Infinity') NOT VALID;
    """),
]


def require_driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise TeamDBError(INSTALL_HINT) from None
    return psycopg


def team_url(config: Config) -> str:
    if not config.team_db_url:
        raise TeamDBError('no team database: set team_db_url = "postgresql://…" in the config file, or'
                          " MCP_ROUTER_TEAM_DB_URL (the password belongs in ~/.pgpass or PGPASSWORD)")
    return config.team_db_url


def describe(url: str) -> str:
    """``host:port/dbname`` of a connection string: what messages name, never its password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # a malformed string: say so without echoing it
        return "(team_db_url)"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def connect(config: Config, *, timeout: int = 10, wait_seconds: int = 0) -> Any:
    """An autocommit psycopg connection to the team database, schema up to date; ``TeamDBError`` if it
    cannot be had. ``wait_seconds``: no statement or lock wait longer, and a peer gone silent noticed as soon
    (a delegation must not wait on the team database without bound)."""
    psycopg = require_driver()
    url = team_url(config)
    try:
        conn = psycopg.connect(url, connect_timeout=timeout, autocommit=True, **_bounds(url, wait_seconds))
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TeamDBError(f"team database {describe(url)} unreachable: {_scrub(reason, url)}") from None
    _load_numbers_as_sqlite_does(conn)
    try:
        migrate(conn, describe(url))
    except BaseException:
        conn.close()
        raise
    return conn


def _bounds(url: str, wait_seconds: int) -> dict[str, Any]:
    """Connection settings so that a client stalled mid-transaction (a laptop put to sleep, a partition) loses
    its transaction and locks on the server within about a minute, not when TCP notices hours later, and,
    with ``wait_seconds``, so that this client waits no longer than that on a statement, a lock or a silent
    server."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        options = str(conninfo_to_dict(url).get("options") or "")
    except Exception:  # psycopg.connect says what is wrong with it
        options = ""
    idle = STALLED_CLIENT_SECONDS
    options += (f" -c idle_in_transaction_session_timeout={idle * 1000} -c tcp_keepalives_idle={idle}"
                f" -c tcp_keepalives_interval={idle} -c tcp_keepalives_count=1")
    if not wait_seconds:
        return {"options": options.strip()}
    ms = wait_seconds * 1000
    return {"options": f"{options} -c statement_timeout={ms} -c lock_timeout={ms}".strip(),
            "keepalives": 1, "keepalives_idle": 1, "keepalives_interval": 1, "keepalives_count": wait_seconds,
            "tcp_user_timeout": ms}


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _scrub(text: str, url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = conninfo_to_dict(url).get("password")
    except Exception:
        return "team_db_url is not a valid PostgreSQL connection string"
    return text.replace(str(password), "***") if password else text


def migrate(conn: Any, where: str = "the team database") -> None:
    """Apply pending migrations (once, under an advisory lock); refuse a schema newer than this version."""
    known = [name for name, _ in MIGRATIONS]

    def applied() -> set[str]:
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            return set()
        return {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}

    import psycopg

    done = applied()
    if not set(known) - done:
        _refuse_newer(done - set(known), where)
        return
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            done = applied()
            _refuse_newer(done - set(known), where)
            if not set(known) - done:  # migrated while this waited (a writer may not even run the CREATE below)
                return
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations"
                         " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            for name, sql in MIGRATIONS:
                if name not in done:
                    conn.execute(sql)
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
    except psycopg.errors.InsufficientPrivilege:  # a writer role (README, "Teams"): migrating is the owner's
        pending = ", ".join(name for name in known if name not in done)
        raise TeamDBError(f"{where} needs migrating to this mcp-router's schema ({pending}), which this role may"
                          " not do: run `mcp-router sync` once as the role that owns the tables") from None


def _refuse_newer(unknown: set[str], where: str) -> None:
    if unknown:
        raise TeamDBError(f"{where} has a newer schema ({max(unknown)}) than this mcp-router knows: upgrade it"
                          " on this machine (pip install -U 'mcp-router[team]')")


class TeamConnection:
    """The team database behind the ``execute`` of an SQLite connection, for the SQL the report and the budget
    write once for both engines (``?`` parameters, standard SQL)."""

    def __init__(self, pg: Any):
        self.pg = pg

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Rows:
        import psycopg

        try:
            cursor = self.pg.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params))  # LIKE '%…' stays
            return _Rows(cursor.fetchall() if cursor.description else ())  # in one call: far fewer round trips
        except psycopg.Error as exc:  # e.g. a writer role setting the team cap, or the server gone mid-report
            raise TeamDBError(f"the team database refused: {_first_line(exc)}") from None

    def now(self) -> datetime:
        """The team's clock: the server's, in UTC. The team month is the UTC month, the same on every machine
        whatever its zone or clock."""
        return self.pg.execute("SELECT now()").fetchone()[0].astimezone(UTC)

    def close(self) -> None:
        self.pg.close()


class _Rows(list[Any]):
    """A statement's rows, read like an SQLite cursor's."""

    def fetchone(self) -> Any:
        return self[0] if self else None

    def fetchall(self) -> list[Any]:
        return self


def _load_numbers_as_sqlite_does(conn: Any) -> None:
    """numeric (what SUM of integers gives) as int when whole, else float, as SQLite returns sums."""
    from psycopg.adapt import Loader

    class NumberLoader(Loader):
        def load(self, data: Any) -> int | float:
            text = bytes(data)
            return int(text) if text.isdigit() or text[1:].isdigit() else float(text)

    conn.adapters.register_loader("numeric", NumberLoader)


def identity(config: Config) -> tuple[str, str]:
    """(user, machine): the config's, else git's global user.email and the host name: the same whichever project
    the sync starts in (a repository's own user.email is not this person's team identity)."""
    user = config.user or _git_email() or f"{getpass.getuser()}@{socket.gethostname()}"
    return user, config.machine or socket.gethostname()


def _git_email() -> str:
    try:
        done = subprocess.run(["git", "config", "--global", "--get", "user.email"], capture_output=True, text=True,
                              timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()
