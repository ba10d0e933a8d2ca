"""The ``mcp-router`` command line: parses arguments, calls the core, prints results.

Expected failures (``MCPRouterError``, ``ValueError``) become one ``Error: …`` line and exit 1.
``hook`` and ``statusline`` are also dispatched in ``__init__.main`` without importing this module,
because Claude Code runs them on every turn.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .config import MAX_CONTEXT_TOKENS, Config, default_db_path
from .errors import MCPRouterError
from .pricing import format_usd

F = TypeVar("F", bound=Callable[..., Any])
# `route -` reads at most this much: sixteen times the largest window, so a pipe that never ends is refused, not read.
STDIN_TASK_BYTES = 64 << 20


class _Group(click.Group):
    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Every error is one ``Error: …`` line: a usage error names the help to read instead of printing it."""
        if kwargs.pop("standalone_mode", True) is False:
            return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            raise SystemExit(exc.exit_code) from None
        except click.ClickException as exc:
            exc.show()
            raise SystemExit(exc.exit_code) from None
        except click.Abort:
            click.echo("Aborted!", err=True)
            raise SystemExit(1) from None
        raise SystemExit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (MCPRouterError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        except sqlite3.Error as exc:  # after a successful open: a file damaged or filled up since
            raise click.ClickException(f"database error: {exc}") from exc
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from exc


def _db_path(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and (not str(value).strip() or value.is_dir()):  # "" arrives as Path(".")
        raise click.BadParameter("--db needs a path to a SQLite file, not an empty path or a folder", ctx, param)
    return value


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        callback=_db_path,
        help="SQLite file [default: $MCP_ROUTER_DB, else $XDG_DATA_HOME/mcp-router/usage.db]",
    )(func)


def open_store(db_path: Path | None) -> sqlite3.Connection:
    from .store import connect

    return connect(db_path or default_db_path())


def open_team(config: Config) -> Any:
    from .team import TeamConnection, connect

    return TeamConnection(connect(config))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mcp-router")
def cli() -> None:
    """Make Claude Code cheaper without making it worse.

    An MCP server that routes work to the cheapest adequate model and delegates reading and
    summarising to Haiku, hooks that log every session's token usage, and a weekly report.
    """


@cli.command()
@click.argument("model", required=False)
@click.option("--batch", is_flag=True, help="Show Message Batches API prices (50% off tokens).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
def pricing(model: str | None, batch: bool, as_json: bool, db_path: Path | None) -> None:
    """The price catalog (USD per million tokens), or one MODEL's prices, window and aliases."""
    from rich.console import Console
    from rich.table import Table

    from .pricing import BATCH_DISCOUNT, RATE_KEYS, Catalog

    config = Config.load()
    catalog = Catalog.load(config.pricing)
    factor = BATCH_DISCOUNT if batch else 1.0
    if model is not None and not model.strip():
        raise click.UsageError("the model name is empty: give a model id or alias, or none for the whole catalog")
    models = [catalog.get(model)] if model else list(catalog.models.values())
    rows = []
    for info in models:
        row: dict[str, Any] = {"id": info.id, "display_name": info.display_name, "family": info.family}
        row.update({key: getattr(info.rates, key) * factor for key in RATE_KEYS})
        row["web_search"] = info.web_search
        row["context_window"] = info.context_window
        row["max_output_tokens"] = info.max_output_tokens
        if info.long_prompt is not None:
            row["long_prompt"] = {key: getattr(info.long_prompt, key) * factor for key in RATE_KEYS}
            row["long_prompt"]["above_prompt_tokens"] = info.long_prompt_threshold
        if info.fast is not None:
            row["fast"] = {key: getattr(info.fast, key) * factor for key in RATE_KEYS}
        row["aliases"] = catalog.aliases_of(info.id)
        row["first_party_id"] = info.first_party_id
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows[0] if model else rows, indent=2))
        return
    console = Console()
    if model:
        row = rows[0]
        console.print(f"[bold]{row['id']}[/bold] ({row['display_name']}, {row['family']})")
        if row["aliases"]:
            console.print(f"aliases: {', '.join(row['aliases'])}")
        if row["first_party_id"] and row["first_party_id"] != row["id"]:
            console.print(f"dated id: {row['first_party_id']}")
        window, max_output = _tokens(row["context_window"]), _tokens(row["max_output_tokens"])
        console.print(f"context window: {window}   max output: {max_output}")
        console.print(f"USD per million tokens{' (batch)' if batch else ''}:")
        for key in RATE_KEYS:
            console.print(f"  {key:<15} {_price(row[key])}")
        console.print(f"  {'web_search':<15} {_price(row['web_search'])} per request")
        if "long_prompt" in row:
            lp = row["long_prompt"]
            console.print(f"above {lp['above_prompt_tokens']:,} prompt tokens, the whole request costs:")
            for key in RATE_KEYS:
                console.print(f"  {key:<15} {_price(lp[key])}")
        if "fast" in row:
            console.print("in fast mode, the whole request costs:")
            for key in RATE_KEYS:
                console.print(f"  {key:<15} {_price(row['fast'][key])}")
        return
    table = Table(title=f"USD per million tokens{' (batch)' if batch else ''}", box=None)
    table.add_column("model", no_wrap=True)
    table.add_column("alias")
    for header in ("input", "output", "cache read", "write 5m", "write 1h", "window"):
        table.add_column(header, justify="right")
    for row in rows:
        long = " *" if "long_prompt" in row else ""
        table.add_row(
            row["id"] + long, ", ".join(row["aliases"]),
            *(_price(row[key]) for key in RATE_KEYS), _tokens(row["context_window"]),
        )
    console.print(table)
    if any("long_prompt" in row for row in rows):
        console.print("* long-prompt prices apply above a threshold: mcp-router pricing MODEL")


@cli.command()
@click.option("--set-monthly", "set_monthly", type=float, default=None, metavar="USD",
              help="Set the monthly cap in USD (0 removes it).")
@click.option("--team", is_flag=True, help="The team's month to date and cap, in the team database.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
def budget(set_monthly: float | None, team: bool, as_json: bool, db_path: Path | None) -> None:
    """Month-to-date spend against the monthly cap (this machine's, or with --team the team's)."""
    from . import budget as budget_core

    config = Config.load()
    team_db = open_team(config) if team else None
    conn = team_db or open_store(db_path)
    if set_monthly is not None:
        budget_core.set_monthly_cap(conn, set_monthly)
    # The team's cap is only the one it set; its month is the server's UTC month.
    status = budget_core.status(conn, Config(), team_db.now()) if team_db else budget_core.status(conn, config)
    if as_json:
        click.echo(json.dumps({
            "month": status.month, "month_to_date_usd": round(status.month_to_date_usd, 6),
            "monthly_cap_usd": status.monthly_cap_usd, "allowed": status.allowed,
            "unpriced_messages": status.unpriced_messages,
        }))
        return
    spent = format_usd(status.month_to_date_usd)
    if status.unpriced_messages:
        spent += (f" (+{status.unpriced_messages:,} unpriced response{'s' if status.unpriced_messages != 1 else ''}"
                  " not counted: add prices under [pricing.models] in the config)")
    if status.monthly_cap_usd > 0:
        share = status.month_to_date_usd / status.monthly_cap_usd
        click.echo(f"{status.month}: {spent} of {format_usd(status.monthly_cap_usd)} ({share:.0%})"
                   + ("" if status.allowed else " — cap reached"))
    else:
        click.echo(f"{status.month}: {spent} (no monthly cap; set one with --set-monthly)")


@cli.command()
@click.option("--void", "void_id", type=click.IntRange(min=1, max=2**63 - 1), default=None, metavar="ID",
              help="Mark cost record ID void: kept and listed, no longer counted as spend.")
@click.option("--limit", type=click.IntRange(min=1, max=1_000_000), default=20, show_default=True,
              help="How many records to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
def costs(void_id: int | None, limit: int, as_json: bool, db_path: Path | None) -> None:
    """Recent cost records (track_cost calls and delegations), newest first; --void ID to cancel one."""
    from datetime import datetime

    from . import budget as budget_core

    conn = open_store(db_path)
    if void_id is not None:
        budget_core.void_cost(conn, void_id)
        click.echo(f"cost record {void_id}: void (kept, no longer counted as spend)")
    records = budget_core.recent_costs(conn, limit)
    if as_json:
        click.echo(json.dumps(records))
        return
    if not records:
        click.echo("no cost records yet (track_cost calls and delegations appear here)")
        return
    click.echo(f"{'ID':>6}  {'when':16}  {'source':10}  {'model':24}  {'input':>10}  {'output':>9}  {'USD':>10}  state")
    for r in records:
        when = datetime.fromtimestamp(r["ts"]).strftime("%Y-%m-%d %H:%M")
        state = "void" if r["void_ts"] is not None else r["state"]
        click.echo(f"{r['id']:>6}  {when:16}  {r['source']:10}  {str(r['model'])[:24]:24}"
                   f"  {r['input_tokens'] or 0:>10,}  {r['output_tokens'] or 0:>9,}  {r['usd'] or 0:>10.4f}  {state}"
                   + (f"  {r['task_type']}" if r["task_type"] else ""))


@cli.command()
@click.option("--projects-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Claude Code projects folder [default: $CLAUDE_CONFIG_DIR/projects, else ~/.claude/projects]")
@db_option
def ingest(projects_dir: Path | None, db_path: Path | None) -> None:
    """Ingest every Claude Code transcript under the projects folder (incremental on re-runs)."""
    from .config import default_projects_dir
    from .ledger import PromptDecider, finish_undecided
    from .pricing import Catalog

    config = Config.load()
    projects_dir = projects_dir or default_projects_dir()
    if not projects_dir.is_dir():
        raise click.ClickException(f"no Claude Code projects folder at {projects_dir}")
    conn = open_store(db_path)
    catalog = Catalog.load(config.pricing)
    decider = PromptDecider(conn, config)
    summary = _ingest_with_progress(conn, projects_dir, catalog, decider)
    finish_undecided(conn, decider)  # what earlier runs left to a background child that did not finish
    _warn_skipped(summary)
    click.echo(
        f"{summary.files} files ({summary.files_read} with new lines, {summary.bytes_read / 1e6:,.1f} MB read): "
        f"{summary.new_responses} new responses, {summary.duplicates} duplicates skipped, "
        f"{summary.malformed_lines} malformed lines skipped"
        + (f", unpriced models: {', '.join(f'{m} ({n})' for m, n in summary.unpriced_models.items())}"
           if summary.unpriced_models else "")
    )


@cli.command()
@click.option("--quiet", is_flag=True, help="Print nothing unless it fails (the hook's background sync).")
@db_option
def sync(quiet: bool, db_path: Path | None) -> None:
    """Send this machine's ledger to the team database (team_db_url); incremental, safe to interrupt."""
    from .sync import sync as sync_ledger

    summary = sync_ledger(open_store(db_path), Config.load())
    if not quiet:
        sent = ", ".join(f"{count:,} {table.replace('_', ' ')}" for table, count in summary.sent.items())
        click.echo(f"synced to {summary.where} as {summary.user} on {summary.machine}: {sent}")


@cli.command()
@db_option
def hook(db_path: Path | None) -> None:
    """Claude Code hook: routing advice on UserPromptSubmit, else ingests the session; always exits 0."""
    from .hook import main

    raise SystemExit(main(["--db", str(db_path)] if db_path else []))


@cli.command()
@click.option("--since", metavar="YYYY-MM-DD", help="First day (inclusive) [default: 6 days before --until]")
@click.option("--until", metavar="YYYY-MM-DD", help="Last day (inclusive) [default: today]")
@click.option("--week", is_flag=True, help="The last 7 days ending today (the default period).")
@click.option("--all", "all_days", is_flag=True, help="Every day the database holds.")
@click.option("--group-by", default="model", show_default=True,
              help="Comma list of day, week, month, model, project, session, agent, branch; with --team also "
                   "user, machine.")
@click.option("--team", is_flag=True, help="Report on the team database (after syncing this machine, unless "
                                           "--no-ingest).")
@click.option("--timezone", "timezone_name", metavar="TZ", help="IANA time zone for days [default: the system's]")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "markdown", "html"]), default="table",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE instead of stdout.")
@click.option("--open", "open_file", is_flag=True, help="Open the HTML report in a browser.")
@click.option("--no-ingest", is_flag=True, help="Report on the database as it is; do not read new transcripts.")
@click.option("--projects-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Claude Code projects folder to ingest first [default: as for ingest]")
@db_option
def report(since: str | None, until: str | None, week: bool, all_days: bool, group_by: str, team: bool,
           timezone_name: str | None, fmt: str, output: Path | None, open_file: bool, no_ingest: bool,
           projects_dir: Path | None, db_path: Path | None) -> None:
    """The usage report: cost by model, day, project and session; delegation savings; advice."""
    from .pricing import Catalog
    from .report import (
        ReportSpec,
        budget_section,
        build_report,
        earliest_read,
        no_activity_note,
        print_table,
        prompt_window,
        render,
    )
    from .report_cache import cached_report

    if sum((week, all_days, bool(since or until))) > 1:
        raise click.UsageError("--week, --all and --since/--until each choose the period: give one of them")
    if open_file and fmt != "html":
        raise click.UsageError("--open opens the HTML report: add --format html")
    if output is not None and not output.parent.is_dir():
        problem = f"{output.parent} is a file, not a folder" if output.parent.exists() else \
            f"the folder {output.parent} does not exist"
        raise click.ClickException(f"--output: {problem}")
    spec = ReportSpec.parse(since, until, timezone_name, group_by, all_days=all_days)
    config = Config.load()
    catalog = Catalog.load(config.pricing)
    conn = open_store(db_path)
    decider = None
    files_left = 0
    if not no_ingest:
        from .config import default_projects_dir
        from .ledger import PromptDecider, finish_undecided

        folder = projects_dir or default_projects_dir()
        # The prompts the report does not read are routed after it, in the background (see PromptDecider), and the
        # transcripts it does not read are ingested there first. Not for the team report: the sync below sends the
        # team database what is ingested now.
        decider = PromptDecider(conn, config, window=prompt_window(spec))
        if folder.is_dir():
            summary = _ingest_with_progress(conn, folder, catalog, decider,
                                            modified_since=None if team else earliest_read(spec))
            _warn_skipped(summary)
            files_left = summary.files_left
            finish_undecided(conn, decider, decider.window)  # the period's, left by a child that did not finish
        else:
            click.echo(f"mcp-router: no Claude Code projects folder at {folder} (set CLAUDE_CONFIG_DIR or pass"
                       " --projects-dir); reporting on the database as it is", err=True)
        if team:
            from .errors import TeamSyncRefused
            from .sync import sync as sync_ledger

            try:
                sync_ledger(conn, config)
            except TeamSyncRefused as exc:  # e.g. the README's reader role: the report is still what it wants
                click.echo(f"mcp-router: {exc}; reporting on the team database as it is", err=True)
    if team:  # the team database is not a local file: built every time
        result = build_report(open_team(config), spec, catalog, config)
    else:
        result = cached_report(conn, spec, config, lambda: build_report(conn, spec, catalog, config),
                               lambda: budget_section(conn, config))
    if fmt == "table" and output is None:
        print_table(result)
    else:
        text = render(result, "markdown" if fmt == "table" else fmt)
        if open_file and output is None:
            output = _report_file()
        if output is None:
            click.echo(text, nl=not text.endswith("\n"))
        else:
            _write(output, text)
            click.echo(f"wrote {output}", err=True)
    note = no_activity_note(result)
    if note:
        click.echo(note, err=fmt != "table" or output is not None)
    if decider is not None and (decider.pending or files_left):
        conn.close()
        decider.decide_in_background(db_path or default_db_path(), folder if files_left else None)
    if open_file and output is not None:
        import webbrowser

        if not webbrowser.open(output.resolve().as_uri()):
            raise click.ClickException(f"no web browser found to open {output}: open the file yourself")


@cli.group()
def db() -> None:
    """The SQLite database: where it is, and what its tables mean (for Datasette)."""


@db.command("path")
@db_option
def db_path_command(db_path: Path | None) -> None:
    """Print the database file, e.g. for datasette "$(mcp-router db path)"."""
    click.echo(db_path or default_db_path())


@db.command()
@db_option
def metadata(db_path: Path | None) -> None:
    """Print Datasette metadata (table and column descriptions, units) for the database.

    datasette "$(mcp-router db path)" -m <(mcp-router db metadata)
    """
    import json

    from .datasette import metadata as build

    click.echo(json.dumps(build(db_path or default_db_path()), indent=2))


@cli.command()
@db_option
def statusline(db_path: Path | None) -> None:
    """One line for Claude Code's statusLine: today's cost, month to date vs cap, saved by delegation."""
    from .statusline import main

    raise SystemExit(main(["--db", str(db_path)] if db_path else []))


@cli.command()
@click.argument("task", required=False)
@click.option("--context-tokens", type=click.IntRange(min=0, max=MAX_CONTEXT_TOKENS), default=0,
              help="Tokens of context the task needs.")
@click.option("--batch", "batch_file", type=click.File("rb"), help="JSONL file of {\"task\": …} lines ('-' for stdin).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
def route(task: str | None, context_tokens: int, batch_file: Any, as_json: bool, db_path: Path | None) -> None:
    """The routing decision for TASK ('-': read it from standard input), or one JSON decision per line of a --batch
    file."""
    from .pricing import Catalog
    from .routing import NOT_TEXT, Router, not_text
    from .transcripts import blank

    if (task is None) == (batch_file is None):
        raise click.UsageError("give a TASK or --batch FILE")
    if task == "-":
        if sys.stdin is None:
            raise click.UsageError("TASK is '-' but there is no standard input to read it from")
        data = sys.stdin.buffer.read(STDIN_TASK_BYTES + 1)
        if len(data) > STDIN_TASK_BYTES:
            raise click.UsageError(f"the task on standard input is over {STDIN_TASK_BYTES >> 20} MiB: no model reads"
                                   " that much; split the input")
        task = data.decode("utf-8", "surrogateescape")  # undecodable bytes become lone surrogates, as in an argument
    if task is not None and blank(task):
        raise click.UsageError(NOT_TEXT.replace("the task", "TASK") if not_text(task) else
                               "TASK is empty: describe the work to route, e.g. 'summarise this log'")
    config = Config.load()
    router = Router.load(Catalog.load(config.pricing), config, open_store(db_path))
    if batch_file is not None:
        # A bad line is one line on stderr and an {"error": …} in its place; the others are routed (exit 1 at the end)
        failed = False
        for number, raw in enumerate(batch_file, 1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # Notepad's BOM
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
                item = json.loads(line)
                if not isinstance(item, dict) or "task" not in item:
                    raise TypeError("a JSON object with a \"task\" string")
                task, context_tokens = item["task"], item.get("context_tokens", 0)
                if not isinstance(task, str):
                    raise TypeError("the task must be a string")
                if isinstance(context_tokens, bool) or not isinstance(context_tokens, int):
                    raise TypeError("context_tokens must be a whole number")
                click.echo(json.dumps(router.route(task, context_tokens).to_dict()))
            except (ValueError, TypeError, RecursionError) as exc:
                why = "nested too deeply" if isinstance(exc, RecursionError) else \
                    "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
                message = f"line {number}: expected {{\"task\": \"…\"}}: {why}"
                click.echo(json.dumps({"line": number, "error": message}))
                click.echo(f"Error: {message}", err=True)
                failed = True
        if failed:
            raise SystemExit(1)
        return
    assert task is not None
    decision = router.route(task, context_tokens)
    if as_json:
        click.echo(json.dumps(decision.to_dict()))
        return
    cost = f", about ${decision.estimated_cost_usd:.4f}" if decision.estimated_cost_usd is not None else ""
    unsure = f", unsure: {' or '.join(decision.candidates)}" if decision.uncertain else ""
    click.echo(f"{decision.tier} ({decision.model}{cost}) — {decision.category}, confidence {decision.confidence:.0%}"
               f"{unsure}")
    click.echo(decision.reason)


@cli.command()
@click.argument("delegation_id", required=False)
@click.argument("rating", type=click.Choice(["good", "bad"]), required=False)
@click.option("--note", default="", help="What was wrong or right.")
@click.option("--reset", "reset_category", metavar="CATEGORY", help="Undo a category's promotion.")
@db_option
def feedback(delegation_id: str | None, rating: str | None, note: str, reset_category: str | None,
             db_path: Path | None) -> None:
    """Rate a delegation good or bad (bad ratings promote its category), or --reset a category."""
    from . import feedback as feedback_core

    conn = open_store(db_path)
    if reset_category is not None:
        removed = feedback_core.reset(conn, reset_category)
        click.echo(f"{reset_category}: override removed" if removed else f"{reset_category}: had no override")
        return
    if not delegation_id or not rating:
        raise click.UsageError("give a DELEGATION_ID and good|bad, or --reset CATEGORY")
    result = feedback_core.record_feedback(conn, delegation_id, rating, note)
    click.echo(f"recorded {rating} for {result['category']}"
               + (f"; {result['category']} now routes to {result['promoted_to']}" if result["promoted_to"] else ""))


@cli.command()
@click.option("--transport", type=click.Choice(["stdio", "streamable-http"]), default="stdio", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="For streamable-http.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="For streamable-http.")
@db_option
def serve(transport: str, host: str, port: int, db_path: Path | None) -> None:
    """The MCP server Claude Code starts (stdio by default)."""
    from .server import serve as run_server

    run_server(db_path or default_db_path(), Config.load(), transport, host, port)


def _install_options(func: F) -> F:
    func = click.option("--dry-run", is_flag=True, help="Show the changes as a diff; write nothing.")(func)
    func = click.option("--scope", type=click.Choice(["user", "project"]), default="user", show_default=True,
                        help="user: ~/.claude/settings.json and ~/.claude.json; project: .claude/settings.json "
                             "and .mcp.json")(func)
    return click.option("--settings", "settings_file", type=click.Path(dir_okay=False, path_type=Path),
                        help="Settings file to edit instead of the scope's.")(func)


@cli.command()
@_install_options
def install(settings_file: Path | None, scope: str, dry_run: bool) -> None:
    """Add the hooks, tool permissions, statusLine and MCP server to Claude Code's files."""
    _install(True, settings_file, scope, dry_run)


@cli.command()
@_install_options
def uninstall(settings_file: Path | None, scope: str, dry_run: bool) -> None:
    """Remove exactly what install added."""
    _install(False, settings_file, scope, dry_run)


def _install(adding: bool, settings_file: Path | None, scope: str, dry_run: bool) -> None:
    from . import install as installer

    changes = installer.plan(adding, scope, settings_file, Path.cwd())
    for change in changes:
        if dry_run:
            click.echo(change.diff() or f"{change.path}: unchanged")
        elif not change.changed:
            click.echo(f"{change.path}: already {'set up' if adding else 'clean'}")
    if dry_run:
        return
    backups = installer.apply(changes, installing=adding)
    for change in changes:
        if change.changed:
            done = "updated" if adding else "removed (install created it)" if change.after is None else "cleaned"
            click.echo(f"{change.path}: {done}")
    for backup in backups:
        click.echo(f"  backup: {backup}")
    if adding:
        click.echo(installer.next_steps(scope))
        if installer.plugin_installed():
            click.echo(installer.PLUGIN_WARNING, err=True)


def _write(output: Path, text: str) -> None:
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None


def _report_file() -> Path:
    """A private file for an HTML report opened without --output."""
    import os
    import tempfile

    handle, name = tempfile.mkstemp(prefix="mcp-router-report-", suffix=".html")
    os.close(handle)
    return Path(name)


def _warn_skipped(summary: Any) -> None:
    """One line per transcript that could not be read or held malformed lines: its cost is missing."""
    for path, reason in summary.unreadable:
        click.echo(f"mcp-router: skipped {path}: {reason}; its usage is not counted", err=True)
    for path, (count, first_line, reason) in summary.malformed_files.items():
        click.echo(f"mcp-router: {path}: skipped {count:,} malformed line{'s' if count != 1 else ''}"
                   f" (first: line {first_line}: {reason})", err=True)


def _ingest_with_progress(conn: Any, projects_dir: Path, catalog: Any, decider: Any = None,
                          modified_since: float | None = None) -> Any:
    """``ingest_tree``, with a progress bar on stderr when it is a terminal and the ingest runs over two seconds."""
    import sys

    from .ledger import ingest_tree

    if not sys.stderr.isatty():
        return ingest_tree(conn, projects_dir, catalog, decider=decider, modified_since=modified_since)
    bar = _IngestBar()
    try:
        return ingest_tree(conn, projects_dir, catalog, progress=bar, decider=decider, modified_since=modified_since)
    finally:
        bar.close()


class _IngestBar:
    """Bytes and files read of those with new lines, and the time left; shown once an ingest has run
    ``DELAY`` seconds, so a quick one prints nothing. Refreshed by hand: ingest may fork parsing workers,
    and fork does not mix with a refresh thread."""

    DELAY = 2.0

    def __init__(self) -> None:
        import time

        self.started = time.monotonic()
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, files: int, read: int, all_files: int, all_bytes: int) -> None:
        if self.bar is None:
            import time

            if time.monotonic() - self.started < self.DELAY:
                return
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("ingesting"), BarColumn(), DownloadColumn(),
                                TextColumn("{task.fields[files]}"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True, auto_refresh=False)
            self.task = self.bar.add_task("ingesting", total=all_bytes, files="")
            self.bar.start()
        self.bar.update(self.task, total=all_bytes, completed=min(read, all_bytes),
                        files=f"{files:,}/{all_files:,} files", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _price(value: float) -> str:
    """A catalog price: two decimals, three when the third matters (0.125)."""
    text = f"{value:,.3f}"
    return text[:-1] if text.endswith("0") else text


def _tokens(value: int | None) -> str:
    if not value:
        return "?"
    return f"{value // 1_000_000}M" if value % 1_000_000 == 0 else f"{value // 1000}k"
