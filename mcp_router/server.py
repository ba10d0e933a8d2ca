"""The MCP server (``mcp-router serve``): route_model, delegate_to_haiku, track_cost, rate_delegation.

This module only translates: arguments in, the core's results out, and the core's errors into tool
errors (``is_error``) with a message the calling model can act on. Every tool call opens its own
database connection, so calls may run on any thread. Logs go to stderr: stdout is the protocol.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, StrictBool, StrictInt, ValidationError

from .config import Config
from .errors import MCPRouterError
from .pricing import Catalog, Usage

log = logging.getLogger(__name__)
GRACE_SHARE = 0.05  # of the tool timeout, past the delegation's own deadline, before the caller is answered
F = TypeVar("F", bound=Callable[..., Any])


class RouteDecision(BaseModel):
    tier: Literal["haiku", "sonnet", "opus"]
    model: str
    category: str
    reason: str
    confidence: float
    estimated_cost_usd: float | None
    uncertain: bool
    candidates: list[str]


class DelegationResult(BaseModel):
    result: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    saved_usd: float
    delegation_id: str
    note: str = ""  # set when the team cap could not be checked; it says so itself (no description: tokens)


class CostResult(BaseModel):
    cost_usd: float
    month_to_date_usd: float
    monthly_cap_usd: float
    allowed: bool


class FeedbackResult(BaseModel):
    delegation_id: str
    category: str
    rating: str
    promoted_to: str | None


def _tool_errors(func: F) -> F:
    """Expected failures become tool errors the model reads; anything else is logged and masked by the SDK."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (MCPRouterError, ValueError) as exc:
            raise ToolError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


class _Server(MCPServer):
    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(argument_errors(name, exc.__cause__)) from exc.__cause__
            raise


def argument_errors(tool: str, error: ValidationError) -> str:
    """Pydantic's validation report as one sentence the calling model can act on (no URLs, no error codes)."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "the arguments"
        given = repr(item.get("input"))
        given = given if len(given) <= 40 else given[:37] + "..."
        ctx = item.get("ctx") or {}
        kind = item["type"]
        if kind == "missing":
            problems.append(f"`{field}` is required")
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            bound = ctx.get("ge", ctx.get("gt", ctx.get("le", ctx.get("lt"))))
            relation = {"greater_than_equal": "at least", "greater_than": "more than",
                        "less_than_equal": "at most", "less_than": "less than"}[kind]
            problems.append(f"`{field}` must be {relation} {bound}, got {given}")
        elif kind.startswith("int_"):
            strict = " (a JSON integer, not a string or boolean)" if isinstance(item.get("input"), (bool, str)) else ""
            problems.append(f"`{field}` must be a whole number{strict}, got {given}")
        elif kind.startswith(("string_", "str_")):
            problems.append(f"`{field}` must be a string, got {given}")
        elif kind.startswith("list_"):
            problems.append(f"`{field}` must be a list, got {given}")
        elif kind.startswith("bool_"):
            problems.append(f"`{field}` must be true or false, got {given}")
        elif kind == "literal_error":
            problems.append(f"`{field}` must be one of {ctx.get('expected', '')}, got {given}")
        else:
            problems.append(f"`{field}`: {item['msg']}")
    return f"{tool}: " + "; ".join(problems) + ". Fix the arguments and call it again."


def build_server(db_path: Path, config: Config, cwd: Path | None = None) -> MCPServer:
    from .routing import Router
    from .store import connect

    catalog = Catalog.load(config.pricing)
    workdir = cwd or Path.cwd()
    from .budget import expire_abandoned

    # The first delegation would otherwise spend seconds of its time budget importing these.
    threading.Thread(target=_warm_up, daemon=True).start()

    db = connect(db_path)  # create or migrate the database once, up front
    expire_abandoned(db)  # holds left by a server killed mid-call
    db.close()
    server = _Server("mcp-router", instructions=(
        "Use delegate_to_haiku to read, summarise, reformat or extract from files and long text instead of reading "
        "them yourself: the files never enter your context and Haiku costs a fraction of your price."
    ))

    def conn() -> Any:
        return connect(db_path)

    routers: dict[tuple[tuple[str, str], ...], Router] = {}

    def router(db: Any) -> Router:
        """The router for the overrides now in force (feedback may promote a category between calls)."""
        rows = db.execute("SELECT category, tier FROM category_overrides ORDER BY category")
        key = tuple((category, tier) for category, tier in rows)
        if key not in routers:
            routers.clear()
            routers[key] = Router.load(catalog, config, db)
        return routers[key]

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False))
    @_tool_errors
    def route_model(
        task: Annotated[str, Field(description="The task, as you would describe it to a colleague.")],
        context_tokens: Annotated[StrictInt, Field(ge=0, description="Tokens of context the task needs.")] = 0,
    ) -> RouteDecision:
        """Cheapest adequate model tier (haiku/sonnet/opus) for a task: model id, reason, cost. Ask before
        spawning a subagent. If `uncertain`, it took the higher of `candidates`: judge yourself."""
        db = conn()
        try:
            return RouteDecision(**router(db).route(task, context_tokens).to_dict())
        finally:
            db.close()

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True))
    @_tool_errors
    def delegate_to_haiku(
        task: Annotated[str, Field(description="What to do, e.g. 'list every failing test and its error'.")],
        paths: Annotated[list[str], Field(description="Files to read (relative to the project).")] = [],  # noqa: B006
        content: Annotated[str, Field(description="Text to work on, if not in files.")] = "",
        max_tokens: Annotated[StrictInt, Field(ge=1, le=64000, description="Longest answer wanted.")] = 1024,
        model: Annotated[str, Field(description="Model id or alias.")] = "haiku",
        force: Annotated[StrictBool, Field(description="Send it even if it looks above Haiku.")] = False,
    ) -> DelegationResult:
        """Run a reading task on Haiku: summarise logs, diffs, docs or output; extract, reformat, classify;
        answer a question about files. The server reads `paths` itself, so their contents never enter your
        context: prefer this to reading large files. Not for design, tricky debugging or writing code."""
        from .delegate import Delegator, out_of_time, time_budget_seconds, tool_timeout_seconds
        from .guard import guard_delegation

        deadline = time.monotonic() + time_budget_seconds()  # from the call's arrival: Claude Code's clock runs
        outcome: dict[str, Any] = {}

        def work() -> None:
            db = conn()
            try:
                category = guard_delegation(db, router(db), task, force)
                outcome["result"] = Delegator(db, config, catalog, workdir).delegate(
                    task, paths, content, max_tokens, model, category=category, deadline=deadline)
            except BaseException as exc:  # handed to the caller's thread below
                outcome["error"] = exc
            finally:
                db.close()

        # The delegation keeps its own deadline; this wait is the backstop for what cannot be interrupted (an
        # import, a starved CPU): the caller gets its answer in time, and a late finish still settles its cost.
        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        worker.join(max(deadline - time.monotonic(), 0) + tool_timeout_seconds() * GRACE_SHARE)
        if worker.is_alive():
            raise ToolError(str(out_of_time("the delegate model", None)))
        if "error" in outcome:
            raise outcome["error"]
        return DelegationResult(**outcome["result"])

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                                             open_world_hint=False))
    @_tool_errors
    def track_cost(
        model: Annotated[str, Field(description="Model id or alias.")],
        input_tokens: Annotated[StrictInt, Field(ge=0)],
        output_tokens: Annotated[StrictInt, Field(ge=0)],
        cache_read_tokens: Annotated[StrictInt, Field(ge=0)] = 0,
        cache_creation_tokens: Annotated[StrictInt, Field(ge=0)] = 0,
        task_type: Annotated[str, Field(description="A label for the report.")] = "",
        requests: Annotated[StrictInt, Field(ge=1, description="API calls these tokens add up.")] = 1,
    ) -> CostResult:
        """Record API spend that Claude Code's own logs do not show (e.g. a script's calls) and check the monthly
        budget. If `allowed` is false, the cap is reached: stop spending and tell the user."""
        from .budget import record_cost

        db = conn()
        try:
            usage = Usage(input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens)
            return CostResult(**record_cost(db, config, catalog, model, usage, task_type, requests))
        finally:
            db.close()

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False))
    @_tool_errors
    def rate_delegation(
        delegation_id: str,
        rating: Literal["good", "bad"],
        note: str = "",
    ) -> FeedbackResult:
        """Rate a delegate_to_haiku answer. Rate 'bad' when it was wrong or useless: categories that keep
        failing get routed to a stronger model."""
        from .feedback import record_feedback

        db = conn()
        try:
            return FeedbackResult(**record_feedback(db, delegation_id, rating, note))
        finally:
            db.close()

    @server.prompt()
    def delegate(task: str) -> str:
        """Hand a reading task and its files to Haiku instead of reading them yourself."""
        return (f"Call the delegate_to_haiku tool for this task instead of reading the files yourself: {task}\n"
                "Put the file paths in `paths` and a precise instruction in `task`; use its answer as is.")

    return server


def _warm_up() -> None:
    try:
        import anthropic  # noqa: F401

        from .redact import warm_up

        warm_up()
    except Exception as exc:  # a delegation will meet the same problem and report it
        log.debug("warm-up failed: %s", exc)


def serve(db_path: Path, config: Config, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765) -> None:
    logging.basicConfig(level=os.environ.get("MCP_ROUTER_LOG_LEVEL", "WARNING"), format="%(name)s: %(message)s")
    server = build_server(db_path, config)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
