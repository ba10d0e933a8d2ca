"""The database schema, as an ordered list of small migrations (append only; never edit a shipped one).

Applied by ``store.connect`` whenever the file's ``PRAGMA user_version`` is behind
``store.SCHEMA_VERSION``; a test keeps the two in step and asserts the migrated columns.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

MIGRATIONS = Migrations("mcp_router")


@MIGRATIONS()
def m001_create_tables(db: Database) -> None:
    # One row per API response (message id + request id), whichever transcript line it came from.
    db.table("usage_events").create(
        {
            "id": int,
            "message_id": str,
            "request_id": str,
            "ts": float,  # epoch seconds, UTC
            "timestamp": str,  # as written in the transcript (ISO 8601, UTC)
            "session_id": str,
            "project": str,  # the transcript's project directory name under ~/.claude/projects
            "cwd": str,
            "git_branch": str,
            "is_sidechain": int,
            "agent_id": str,
            "agent_type": str,
            "model": str,  # catalog id, or the raw name of a model the catalog does not know
            "raw_model": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_creation_tokens": int,
            "cache_creation_5m_tokens": int,
            "cache_creation_1h_tokens": int,
            "web_search_requests": int,
            "total_tokens": int,
            "inference_geo": str,
            "service_tier": str,
            "speed": str,
            "cost_usd": float,  # NULL = unpriced model, never 0
            "source_file": str,
            "line_no": int,
        },
        pk="id",
        not_null={"message_id", "request_id", "ts", "model"},
        defaults={"request_id": "", "is_sidechain": 0},
    )
    db.table("usage_events").create_index(["message_id", "request_id"], unique=True)
    db.table("usage_events").create_index(["ts"])
    db.table("usage_events").create_index(["session_id"])

    # Tool results the main model read: the size of what delegation could have taken instead.
    db.table("tool_results").create(
        {
            "tool_use_id": str,
            "ts": float,
            "session_id": str,
            "project": str,
            "tool_name": str,
            "content_chars": int,
            "is_sidechain": int,
        },
        pk="tool_use_id",
    )
    db.table("tool_results").create_index(["ts"])

    # Where each transcript file was read up to, and what it looked like then.
    db.table("ingest_files").create(
        {
            "path": str,
            "offset": int,
            "size": int,
            "inode": int,
            "mtime": float,
            "session_id": str,
            "project": str,
            "lines": int,
            "malformed_lines": int,
            "updated_at": float,
        },
        pk="path",
    )

    # Claude Code's own cost of each session (its last ``cost-state`` line), for cross-checks.
    db.table("session_costs").create(
        {
            "session_id": str,
            "total_cost_usd": float,
            "model_usage": str,  # JSON, as written
            "has_unknown_model_cost": int,
            "source_file": str,
            "updated_at": float,
        },
        pk="session_id",
    )

    db.table("delegations").create(
        {
            "id": str,
            "ts": float,
            "session_id": str,
            "category": str,
            "task": str,
            "model": str,
            "main_model": str,
            "backend": str,  # "api" or "claude-cli"
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_creation_tokens": int,
            "cost_usd": float,
            "saved_usd": float,
            "latency_ms": float,
            "outcome": str,  # "ok", "error", "refused"
            "error": str,
        },
        pk="id",
    )
    db.table("delegations").create_index(["ts"])

    # Spend the server knows of outside transcripts: track_cost calls, and delegation reservations
    # (reserved before the call, settled to the real cost after it).
    db.table("cost_records").create(
        {
            "id": int,
            "ts": float,
            "source": str,  # "track_cost" or "delegation"
            "model": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_creation_tokens": int,
            "task_type": str,
            "reserved_usd": float,
            "cost_usd": float,
            "state": str,  # "reserved", "settled", "released"
            "delegation_id": str,
        },
        pk="id",
    )
    db.table("cost_records").create_index(["ts"])

    db.table("feedback").create(
        {
            "id": int,
            "delegation_id": str,
            "ts": float,
            "category": str,
            "rating": str,  # "good" or "bad"
            "note": str,
        },
        pk="id",
    )
    db.table("feedback").create_index(["category", "ts"])

    # Per-category tier changes: automatic promotions from feedback, or the user's own.
    db.table("category_overrides").create(
        {"category": str, "tier": str, "source": str, "reason": str, "ts": float},
        pk="category",
    )

    db.table("budget_alerts").create({"month": str, "threshold": float, "ts": float}, pk=("month", "threshold"))

    db.table("settings").create({"key": str, "value": str}, pk="key")



_ROLLUP_KEY = ("bucket", "model", "project", "session_id", "agent", "branch")
_ROLLUP_SUMS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
                "cache_creation_1h_tokens", "cost_usd", "messages", "unpriced_messages")


def _rollup_keys(row: str) -> list[str]:
    """SQL expressions of a usage_events row (NEW, OLD or the table) for the rollup's key columns."""
    return [
        f"CAST({row}.ts / 900 AS INTEGER)", f"{row}.model", f"COALESCE({row}.project, '')",
        f"COALESCE({row}.session_id, '')",
        f"CASE WHEN {row}.agent_id IS NULL AND COALESCE({row}.is_sidechain, 0) = 0 THEN 'main'"
        f" ELSE COALESCE({row}.agent_type, 'subagent') END",
        f"COALESCE(NULLIF({row}.git_branch, ''), '(none)')",
    ]


def _rollup_sums(row: str) -> list[str]:
    """SQL expressions of a usage_events row for the rollup's summed columns."""
    tokens = [f"COALESCE({row}.{column}, 0)" for column in _ROLLUP_SUMS[:5]]
    return [*tokens, f"COALESCE({row}.cost_usd, 0)", "1", f"({row}.cost_usd IS NULL)"]


def _create_rollup(db: Database, new_sums: list[str], add: str, subtract: str, sums_sql: str,
                   backfill_sums: list[str]) -> None:
    """The rollup table, the triggers that keep it in step with usage_events, and its rows for what is there."""
    columns = ", ".join((*_ROLLUP_KEY, *_ROLLUP_SUMS))
    upsert = (f"INSERT INTO usage_rollup ({columns}) VALUES ({', '.join(_rollup_keys('NEW') + new_sums)})"
              f" ON CONFLICT({', '.join(_ROLLUP_KEY)}) DO UPDATE SET {add};")
    old_key = " AND ".join(f"{key} = {value}" for key, value in zip(_ROLLUP_KEY, _rollup_keys("OLD"), strict=True))
    db.execute(f"""CREATE TABLE usage_rollup (
        bucket INTEGER NOT NULL, model TEXT NOT NULL, project TEXT NOT NULL, session_id TEXT NOT NULL,
        agent TEXT NOT NULL, branch TEXT NOT NULL, {sums_sql},
        PRIMARY KEY ({', '.join(_ROLLUP_KEY)})) WITHOUT ROWID""")
    db.execute(f"CREATE TRIGGER usage_rollup_insert AFTER INSERT ON usage_events BEGIN {upsert} END")
    db.execute(f"CREATE TRIGGER usage_rollup_update AFTER UPDATE ON usage_events BEGIN"
               f" UPDATE usage_rollup SET {subtract} WHERE {old_key}; {upsert} END")
    db.execute(f"CREATE TRIGGER usage_rollup_delete AFTER DELETE ON usage_events BEGIN"
               f" UPDATE usage_rollup SET {subtract} WHERE {old_key}; END")
    keys = _rollup_keys("usage_events")
    db.execute(f"INSERT INTO usage_rollup ({columns}) SELECT {', '.join(keys)}, {', '.join(backfill_sums)}"
               f" FROM usage_events GROUP BY {', '.join(keys)}")


@MIGRATIONS()
def m002_create_usage_rollup(db: Database) -> None:
    # Usage summed per 15-minute UTC bucket and report key, kept in step with usage_events by triggers, so
    # reports and the status line read thousands of rows instead of millions. 15 minutes because every real
    # UTC offset is a multiple of it: a local day is a whole set of buckets in any time zone.
    _create_rollup(
        db, _rollup_sums("NEW"),
        add=", ".join(f"{c} = {c} + excluded.{c}" for c in _ROLLUP_SUMS),
        subtract=", ".join(f"{c} = {c} - {v}" for c, v in zip(_ROLLUP_SUMS, _rollup_sums("OLD"), strict=True)),
        sums_sql=", ".join(f"{c} {'REAL' if c == 'cost_usd' else 'INTEGER'} NOT NULL DEFAULT 0" for c in _ROLLUP_SUMS),
        backfill_sums=[f"SUM({s})" for s in _rollup_sums("usage_events")])


@MIGRATIONS()
def m003_create_prompts(db: Database) -> None:
    # What the user typed at each turn of a main session, so the report can price each turn's responses
    # on the tier the router would have picked for that prompt. Keyed on the transcript line's uuid, so a
    # resumed session's replayed lines add nothing.
    db.table("prompts").create(
        {"uuid": str, "session_id": str, "ts": float, "text": str},
        pk="uuid",
    )
    db.table("prompts").create_index(["session_id", "ts"])


@MIGRATIONS()
def m004_drop_usage_indexes_reports_do_not_use(db: Database) -> None:
    # Reports read usage_rollup; usage_events is looked up only by (message_id, request_id). Two indexes
    # fewer to keep up is a tenth of a bulk ingest.
    db.execute("DROP INDEX IF EXISTS idx_usage_events_ts")
    db.execute("DROP INDEX IF EXISTS idx_usage_events_session_id")


@MIGRATIONS()
def m005_index_tool_result_sizes_by_time(db: Database) -> None:
    # The report sums the size of the main chain's tool results over its period: with the size and the chain
    # in the time index, that is a scan of the index alone, not a table lookup per tool result.
    db.execute("DROP INDEX IF EXISTS idx_tool_results_ts")
    db.table("tool_results").create_index(["ts", "is_sidechain", "content_chars"])


@MIGRATIONS()
def m006_prompts_keep_decisions_not_text(db: Database) -> None:
    # Privacy: a prompt keeps the router's decision (what the report's as-routed what-if needs) and its
    # length; its text only with keep_prompts. secure_delete overwrites the dropped text in the file itself.
    from .config import Config
    from .errors import ConfigError
    from .ledger import PromptDecider

    db.execute("PRAGMA secure_delete = ON")
    for column, kind in (("tier", "TEXT"), ("category", "TEXT"), ("confidence", "REAL"), ("chars", "INTEGER")):
        db.execute(f"ALTER TABLE prompts ADD COLUMN {column} {kind}")
    try:
        config = Config.load()
    except ConfigError:
        config = Config()  # unreadable config: the private default
    rows = db.execute("SELECT uuid, session_id, ts, text FROM prompts").fetchall()
    decided = PromptDecider(db.conn, config).rows(rows)
    db.conn.executemany("UPDATE prompts SET text = ?, tier = ?, category = ?, confidence = ?, chars = ? WHERE uuid = ?",
                        [(*row[3:], row[0]) for row in decided])
    # Server-side spend: a reservation lapses if its call never settles (a killed server); a record can be
    # voided (kept, marked, no longer spend).
    db.execute("ALTER TABLE cost_records ADD COLUMN expires_ts REAL")
    db.execute("ALTER TABLE cost_records ADD COLUMN pid INTEGER")
    db.execute("ALTER TABLE cost_records ADD COLUMN void_ts REAL")
    db.execute("UPDATE cost_records SET expires_ts = ts + 120 WHERE state = 'reserved'")
    # The sessions of `claude -p` delegation runs: the ledger skips their transcripts.
    db.table("delegation_sessions").create({"session_id": str, "delegation_id": str, "ts": float}, pk="session_id")


@MIGRATIONS()
def m007_rollup_cost_null_when_unpriced(db: Database) -> None:
    # A rollup row whose responses are all of an unpriced model had cost 0, which read as free: rebuild the
    # rollup with a nullable cost, NULL until a priced response is added (SUM of NULLs is NULL).
    for name in ("usage_rollup_insert", "usage_rollup_update", "usage_rollup_delete"):
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    db.execute("DROP TABLE usage_rollup")
    sums = _rollup_sums("NEW")
    sums[5] = "NEW.cost_usd"
    add = ", ".join(f"{c} = {c} + excluded.{c}" for c in _ROLLUP_SUMS if c != "cost_usd")
    add += (", cost_usd = CASE WHEN excluded.cost_usd IS NULL THEN cost_usd"
            " ELSE COALESCE(cost_usd, 0) + excluded.cost_usd END")
    subtract = ", ".join(f"{c} = {c} - {v}" for c, v in zip(_ROLLUP_SUMS, _rollup_sums("OLD"), strict=True)
                         if c != "cost_usd")
    # Once only unpriced responses are left, the cost is unknown again, not 0.
    subtract += (", cost_usd = CASE WHEN messages - 1 = unpriced_messages - (OLD.cost_usd IS NULL) THEN NULL"
                 " ELSE cost_usd - COALESCE(OLD.cost_usd, 0) END")
    backfill = [f"SUM({s})" for s in _rollup_sums("usage_events")]
    backfill[5] = "SUM(usage_events.cost_usd)"
    _create_rollup(
        db, sums, add, subtract,
        sums_sql=", ".join(f"{c} REAL" if c == "cost_usd" else f"{c} INTEGER NOT NULL DEFAULT 0" for c in _ROLLUP_SUMS),
        backfill_sums=backfill)


_ENCODED_PATH = "replace(replace(replace(replace(path, '/', '-'), '.', '-'), '_', '-'), ' ', '-')"


_COST_BY_PROJECT = """CREATE VIEW cost_by_project AS
        SELECT COALESCE(f.path, r.project) AS project_path, r.project AS project_key,
            COUNT(DISTINCT r.session_id) AS sessions, SUM(r.messages) AS responses,
            SUM(r.unpriced_messages) AS unpriced_responses, ROUND(SUM(r.cost_usd), 6) AS cost_usd,
            date(MIN(r.bucket) * 900, 'unixepoch', 'localtime') AS first_day,
            date(MAX(r.bucket) * 900, 'unixepoch', 'localtime') AS last_day
        FROM usage_rollup r LEFT JOIN project_folders f ON f.project = r.project
        GROUP BY r.project ORDER BY cost_usd DESC"""  # m012 made it again over its new project_folders view


@MIGRATIONS()
def m009_create_project_paths_and_views(db: Database) -> None:
    # The real folder behind each of Claude Code's encoded project names ("-home-user-code-api"): the encoding
    # is lossy (dashes, dots and slashes all become "-"), the transcripts' cwd is not. A session can move to
    # a subfolder, so a project keeps every distinct cwd; report.project_paths picks the one to show.
    db.execute("CREATE TABLE project_paths (project TEXT NOT NULL, path TEXT NOT NULL,"
               " PRIMARY KEY (project, path)) WITHOUT ROWID")
    db.execute("CREATE TRIGGER project_paths_insert AFTER INSERT ON usage_events"
               " WHEN NEW.cwd IS NOT NULL AND NEW.cwd != '' BEGIN"
               " INSERT OR IGNORE INTO project_paths (project, path) VALUES (COALESCE(NEW.project, ''), NEW.cwd); END")
    db.execute("INSERT OR IGNORE INTO project_paths SELECT DISTINCT COALESCE(project, ''), cwd FROM usage_events"
               " WHERE cwd IS NOT NULL AND cwd != ''")
    # The views people open first in Datasette. Days are the local days of the machine running the query.
    db.execute(f"""CREATE VIEW project_folders AS
        SELECT project, path FROM (SELECT project, path, ROW_NUMBER() OVER (PARTITION BY project
            ORDER BY {_ENCODED_PATH} != project, length(path), path) AS choice FROM project_paths)
        WHERE choice = 1""")
    db.execute("""CREATE VIEW daily_cost_by_model AS
        SELECT date(bucket * 900, 'unixepoch', 'localtime') AS day, model, SUM(messages) AS responses,
            SUM(unpriced_messages) AS unpriced_responses, SUM(input_tokens) AS input_tokens,
            SUM(output_tokens) AS output_tokens, SUM(cache_creation_tokens) AS cache_creation_tokens,
            SUM(cache_read_tokens) AS cache_read_tokens, ROUND(SUM(cost_usd), 6) AS cost_usd
        FROM usage_rollup GROUP BY day, model ORDER BY day DESC, cost_usd DESC""")
    db.execute(_COST_BY_PROJECT)
    db.execute("""CREATE VIEW delegations_with_savings AS
        SELECT d.id, datetime(d.ts, 'unixepoch', 'localtime') AS time, d.category, d.model, d.main_model,
            d.backend, d.outcome, d.input_tokens, d.output_tokens, d.cost_usd,
            d.saved_usd, d.latency_ms,
            (SELECT rating FROM feedback f WHERE f.delegation_id = d.id ORDER BY f.ts DESC LIMIT 1) AS rating
        FROM delegations d ORDER BY d.ts DESC""")


@MIGRATIONS()
def m008_create_advice_events(db: Database) -> None:
    # Routing advice, read from the transcripts ("delegate": the model was told to hand reading to Haiku;
    # "model": the user was told /model opus fits), the user's /model changes ("model_change", category = the
    # model as typed), and delegations the server's guard refused ("guarded"). Categories only, never text.
    db.table("advice_events").create(
        {"uuid": str, "session_id": str, "ts": float, "kind": str, "category": str}, pk="uuid")
    db.table("advice_events").create_index(["ts"])
    db.table("advice_events").create_index(["session_id", "ts"])


@MIGRATIONS()
def m012_project_folders_encode_as_claude_code_does(db: Database) -> None:
    # m009's view turned only / . _ and space into "-", so a folder with "+", "@" or "é" never matched its key
    # and Datasette showed another folder than the report. Views cannot call projects.encode: this one spells
    # it out character by character (an emoji is two UTF-16 units, so "--"; keys over 200 are cut + "-hash").
    db.execute("DROP VIEW cost_by_project")
    db.execute("DROP VIEW project_folders")
    db.execute("""CREATE VIEW project_folders AS
        WITH RECURSIVE encoded(project, path, i, key) AS (
            SELECT project, path, 1, '' FROM project_paths
            UNION ALL
            SELECT project, path, i + 1, key || CASE WHEN substr(path, i, 1) GLOB '[A-Za-z0-9]'
                THEN substr(path, i, 1) WHEN unicode(substr(path, i, 1)) > 65535 THEN '--' ELSE '-' END
            FROM encoded WHERE i <= length(path))
        SELECT project, path FROM (SELECT project, path, ROW_NUMBER() OVER (PARTITION BY project
            ORDER BY NOT (key = project
                          OR (length(key) > 200 AND substr(project, 1, 201) = substr(key, 1, 200) || '-')),
                length(path), path) AS choice
            FROM encoded WHERE i = length(path) + 1)
        WHERE choice = 1""")
    db.execute(_COST_BY_PROJECT)


SYNCED_TABLES = ("usage_events", "tool_results", "delegations", "cost_records", "feedback", "prompts")


@MIGRATIONS()
def m011_log_updates_for_team_sync(db: Database) -> None:
    # Team sync sends each table's new rows by rowid (a high-water mark) and, from this log, the older rows
    # changed since (a reservation settled, a response replaced by a fuller copy). Only once this ledger has
    # a team (the ``team_ledger_id`` setting), so a solo user's log stays empty.
    db.execute("CREATE TABLE sync_changes (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, row INTEGER NOT NULL)")
    for table in SYNCED_TABLES:
        db.execute(f"CREATE TRIGGER sync_changes_{table} AFTER UPDATE ON {table}"
                   " WHEN EXISTS (SELECT 1 FROM settings WHERE key = 'team_ledger_id')"
                   f" BEGIN INSERT INTO sync_changes (tbl, row) VALUES ('{table}', NEW.rowid); END")


@MIGRATIONS()
def m013_index_subagent_usage_by_time(db: Database) -> None:
    # The report finds haiku-reader runs (and whether advice was followed) among subagent responses: without an
    # index that was a scan of every response, 0.6 s -> 5.9 s on 10M. Subagent rows only, so ingest of main-chain
    # responses keeps no extra index. Queries must say ``agent_type IS NOT NULL`` for SQLite to use it.
    db.execute("CREATE INDEX usage_events_agents ON usage_events (ts) WHERE agent_type IS NOT NULL")


@MIGRATIONS()
def m014_model_changes_keep_only_the_tier(db: Database) -> None:
    # A /model change was stored as typed, and Claude Code records whatever follows /model (a secret, a
    # sentence): keep only the tier it names, as transcripts.py now records it, and overwrite the old text.
    db.execute("PRAGMA secure_delete = ON")
    db.execute("UPDATE advice_events SET category = CASE WHEN lower(category) LIKE '%haiku%' THEN 'haiku'"
               " WHEN lower(category) LIKE '%sonnet%' THEN 'sonnet' WHEN lower(category) LIKE '%opus%' THEN 'opus'"
               " ELSE 'other' END WHERE kind = 'model_change' AND category NOT IN ('haiku', 'sonnet', 'opus', 'other')")


@MIGRATIONS()
def m015_sources_of_undecided_prompts(db: Database) -> None:
    # A prompt written undecided (routed later by a background child) keeps where its text is, never the text:
    # the transcript and the line. Any later report or ingest can then route it, if that child died.
    db.execute("CREATE TABLE prompt_sources (uuid TEXT PRIMARY KEY, source_file TEXT NOT NULL,"
               " line_no INTEGER NOT NULL)")
