"""The usage report: where the money went, what delegation saved, what to change.

``build_report`` returns the JSON document of DESIGN.md; ``render`` turns it into a table, CSV,
Markdown or HTML. Aggregation happens in SQL over the 15-minute UTC buckets of ``usage_rollup`` (every
real UTC offset is a multiple of 15 minutes): zoneinfo maps the buckets to local days, so day boundaries
are right in any time zone, across DST changes too, and each local day is one indexed range scan summed
by the other keys; days then roll up into weeks and months. A million rows never reach Python.

The same code reports on the team database (``team.TeamConnection``): its SQL is written for both engines, and
the team rollup adds ``user`` and ``machine`` keys. The as-routed what-if joins turns to buckets with SQLite
functions and a temporary table, and project folders are local paths the team database never receives, so
both are local reports' only.
"""

from __future__ import annotations

import csv
import html
import io
import re
import sqlite3
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .advice_report import haiku_reader, measured_advice
from .budget import month_start
from .budget import status as budget_status
from .config import Config
from .feedback import MAX_BAD_RATE, category_quality
from .pricing import Catalog, Usage, cost_usd, format_cost, format_usd
from .projects import project_paths, short_path
from .store import Queryable

GROUP_KEYS = ("day", "week", "month", "model", "project", "session", "agent", "branch", "user", "machine")
TEAM_KEYS = ("user", "machine")
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
BUCKET_SECONDS = 900
_TIER_ORDER = ("haiku", "sonnet", "opus")
_TIER_RANKS = {tier: rank for rank, tier in enumerate(_TIER_ORDER)}
PROMPT_LOOKBACK_SECONDS = 86_400  # a turn begun the day before the period still prices its first responses
CHARS_PER_TOKEN = 4
# A longer period is trimmed to the days the ledger holds, so --since 0001-01-01 reads no more than the data.
LONG_PERIOD_DAYS = 366
_SQL_KEYS = {"model": "model", "project": "project", "session": "session_id", "agent": "agent", "branch": "branch",
             "user": '"user"', "machine": "machine"}


@dataclass(frozen=True)
class ReportSpec:
    since: date
    until: date
    timezone: str
    group_by: tuple[str, ...] = ("model",)
    all_days: bool = False  # every day the database holds: since and until are replaced by its span

    @classmethod
    def parse(cls, since: str | None, until: str | None, timezone: str | None, group_by: str | None,
              today: date | None = None, *, all_days: bool = False) -> ReportSpec:
        if timezone is not None and not timezone.strip():
            raise ValueError("--timezone is empty: give an IANA name such as Europe/Paris, or leave it out")
        tz_name = timezone or _system_timezone()
        try:
            zone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz_name!r} (use an IANA name such as Europe/Paris)") from None
        today = today or datetime.now(zone).date()
        end = _date(until, "--until") if until else today
        if end > today + timedelta(days=LONG_PERIOD_DAYS):  # "until forever": up to today
            end = today
        start = _date(since, "--since") if since else end - timedelta(days=6)
        if start > end:
            raise ValueError(f"--since {start} is after --until {end}")
        keys = tuple(k.strip() for k in (group_by if group_by is not None else "model").split(","))
        unknown = [k for k in keys if k not in GROUP_KEYS]
        if unknown:
            raise ValueError(f"--group-by: {'empty key' if not unknown[0] else f'unknown key {unknown[0]!r}'} "
                             f"(use a comma list of {', '.join(GROUP_KEYS)})")
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"--group-by: {repeated[0]!r} is given twice")
        return cls(start, end, tz_name, keys, all_days)


def prompt_window(spec: ReportSpec) -> tuple[float, float] | None:
    """When the prompts the as-routed what-if of ``spec`` reads were made (its period and the day before it), or
    None for every day the database holds."""
    if spec.all_days:
        return None
    zone = ZoneInfo(spec.timezone)
    return (datetime.combine(spec.since, time(), zone).timestamp() - PROMPT_LOOKBACK_SECONDS,
            datetime.combine(spec.until + timedelta(days=1), time(), zone).timestamp())


def earliest_read(spec: ReportSpec, now: datetime | None = None) -> float | None:
    """The earliest moment whose transcript events the report of ``spec`` reads (epoch seconds), or None when that
    is the ledger's first day. The sections reading before the period: the as-routed what-if (the day before it,
    ``prompt_window``) and the budget (usage since the month's start, ``budget.month_start``). A later event counts
    too, wherever it is (the latest activity, a turn's follow-up). None for --all and for a period longer than
    ``LONG_PERIOD_DAYS``, which is trimmed to the ledger's first day."""
    window = prompt_window(spec)
    if window is None or (spec.until - spec.since).days > LONG_PERIOD_DAYS:
        return None
    return min(window[0], month_start(now).timestamp())


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        if re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])-\d{2}", text):
            raise ValueError(f"{option}: {text} does not exist (that month has fewer days)") from None
        raise ValueError(f"{option}: expected a date as YYYY-MM-DD, got {text!r}") from None


def _system_timezone() -> str:
    import os

    if os.environ.get("TZ"):
        return os.environ["TZ"].lstrip(":")
    try:
        link = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in link:
            return link.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"


def _empty_totals() -> dict[str, Any]:
    return {**{f: 0 for f in TOKEN_FIELDS}, "cost_usd": 0.0, "messages": 0, "unpriced_messages": 0}


def build_report(conn: Queryable, spec: ReportSpec, catalog: Catalog, config: Config,
                 now: datetime | None = None) -> dict[str, Any]:
    """The report of ``conn``: this machine's SQLite ledger, or the team database (``team.TeamConnection``)."""
    own = conn if isinstance(conn, sqlite3.Connection) else None  # this machine's ledger
    local = own is not None
    if local and set(spec.group_by) & set(TEAM_KEYS):
        raise ValueError("--group-by user and machine are keys of the team report: add --team")
    zone = ZoneInfo(spec.timezone)
    first_day, last_day = _activity_span(conn, zone)
    spec = _trimmed(spec, first_day, last_day, (now or datetime.now(zone)).astimezone(zone).date())
    start = datetime.combine(spec.since, time(), zone).timestamp()
    end = datetime.combine(spec.until + timedelta(days=1), time(), zone).timestamp()
    sql_keys = [k for k in spec.group_by if k in _SQL_KEYS]
    if "model" not in sql_keys:
        sql_keys.append("model")  # cost by model, cache savings and what-if need it
    if not local and "user" not in sql_keys:
        sql_keys.append("user")  # the per-person totals
    select_keys = ", ".join(_SQL_KEYS[k] for k in sql_keys)
    runs = _day_runs(int(start // BUCKET_SECONDS), int(end // BUCKET_SECONDS), zone)
    rows = [(day, *row) for day, first, stop in runs for row in conn.execute(
        f"SELECT {select_keys}, SUM(input_tokens), SUM(output_tokens), SUM(cache_creation_tokens),"
        " SUM(cache_read_tokens), COALESCE(SUM(cost_usd), 0.0), SUM(messages), SUM(unpriced_messages),"
        " SUM(cache_creation_1h_tokens) FROM usage_rollup"
        f" WHERE bucket >= ? AND bucket < ? AND messages > 0 GROUP BY {select_keys}", (first, stop))]
    totals = _empty_totals()
    groups: dict[tuple, dict[str, Any]] = {}
    by_model: dict[str, dict[str, Any]] = defaultdict(lambda: {**_empty_totals(), "cache_creation_1h_tokens": 0})
    by_day: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    priced_by_day: set[tuple[str, str]] = set()
    unpriced: dict[str, int] = defaultdict(int)
    people: dict[str, dict[str, Any]] = defaultdict(_empty_totals)
    for row in rows:
        local_day = date.fromisoformat(row[0])
        values = dict(zip(sql_keys, row[1:1 + len(sql_keys)], strict=True))
        numbers = row[1 + len(sql_keys):]
        time_keys = {
            "day": local_day.isoformat(),
            "week": (local_day - timedelta(days=local_day.weekday())).isoformat(),
            "month": local_day.strftime("%Y-%m"),
        }
        key = tuple(time_keys[k] if k in time_keys else values[k] for k in spec.group_by)
        group = groups.setdefault(key, {**dict(zip(spec.group_by, key, strict=True)), **_empty_totals()})
        model = values["model"]
        for target in (totals, group, by_model[model], *([] if local else [people[values["user"]]])):
            _accumulate(target, numbers)
        by_model[model]["cache_creation_1h_tokens"] += numbers[7] or 0
        by_day[time_keys["day"]][model] += numbers[4]
        if numbers[5] > (numbers[6] or 0):
            priced_by_day.add((time_keys["day"], model))
        if numbers[6]:
            unpriced[model] += numbers[6]
    paths = project_paths(own) if own else {}
    ordered_groups = sorted((_with_project_path(g, paths) for g in groups.values()),
                            key=lambda g: tuple(str(g[k]) for k in spec.group_by))
    if spec.group_by == ("model",):
        ordered_groups.sort(key=lambda g: -g["cost_usd"])
    for group in ordered_groups:
        group["cost_usd"] = _priced_cost(group)
        group["share"] = None if group["cost_usd"] is None else _ratio(group["cost_usd"], totals["cost_usd"])
    totals["cost_usd"] = _priced_cost(totals)
    days = _days(spec.since, spec.until)
    # Everything else first: the as-routed what-if waits for the prompts' ranks.
    turns = _turns(own, start, end) if own else {}
    spans = _bucket_turns(own, start, end, turns) if own else []
    top_sessions = [_with_project_path(s, paths) for s in _top_sessions(conn, start, end)]
    delegations = _delegations(conn, start, end, zone, days)
    delegations["haiku_reader"] = haiku_reader(conn, start, end, catalog)
    # The team's cap is only the one set in the team database, never this machine's config.
    budget, feedback = _budget(conn, config if local else Config(), now), category_quality(conn)
    recommendations = _recommendations(conn, start, end, catalog, config)
    if own:
        as_routed = _as_routed(own, start, catalog, turns, spans, _TIER_RANKS, totals["cost_usd"] or 0.0)
    else:  # every response keeps its cost, as a local session with no routed prompt
        as_routed = {"as_routed_usd": round(totals["cost_usd"] or 0.0, 6),
                     "as_routed": {"prompts": 0, "responses": 0, "prompts_by_tier": dict.fromkeys(_TIER_ORDER, 0)}}
    report: dict[str, Any] = {
        "since": spec.since.isoformat(), "until": spec.until.isoformat(), "timezone": spec.timezone,
        "group_by": list(spec.group_by),
        "totals": totals,
        "groups": ordered_groups,
        "unpriced_models": dict(unpriced),
        "latest_activity": last_day.isoformat() if last_day else None,
        "daily": [{"day": d, "cost_by_model": {m: round(c, 9) if (d, m) in priced_by_day else None
                                               for m, c in by_day.get(d, {}).items()}} for d in days],
        "requests_by_model": {m: n["messages"] for m, n in sorted(by_model.items(), key=lambda kv: -kv[1]["messages"])},
        "top_sessions": top_sessions,
        "cache": _cache_efficiency(by_model, catalog),
        "what_if": {**_what_if(by_model, catalog, totals), **as_routed},
        "delegations": delegations,
        "advice": measured_advice(conn, start, end),
        "budget": budget,
        "feedback": feedback,
        "quality_over_time": _quality_over_time(conn, start, end, zone, days, local),
        "recommendations": recommendations,
    }
    if not local:
        report["people"] = [{"user": user, **numbers, "cost_usd": _priced_cost(numbers)}
                            for user, numbers in sorted(people.items(), key=lambda item: -item[1]["cost_usd"])]
    return report


def _ratio(part: float, whole: float) -> float:
    """``part / whole`` to four decimals, but never a positive part rounded to nothing (two significant digits)."""
    if not whole:
        return 0.0
    ratio = part / whole
    if 0 < ratio < 1e-4:
        return float(f"{ratio:.2g}")
    return 0.9999 if 0.9999 < ratio < 1 else round(ratio, 4)


def _with_project_path(row: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    """``row`` with its project shown as the real folder, shortened (``~/code/api``), followed by the folder
    in full (``project_path``) and Claude Code's own name for it (``project_key``)."""
    if "project" not in row:
        return row
    named: dict[str, Any] = {}
    for name, value in row.items():
        if name == "project":
            path = paths.get(value)
            named.update(project=short_path(path) if path else value, project_path=path, project_key=value)
        else:
            named[name] = value
    return named


def quality_step(days: int) -> str:
    """The time step of the quality charts (ratings are sparse): a day for up to two weeks, a week for up to
    half a year, else a month."""
    return "day" if days <= 14 else "week" if days <= 183 else "month"


def _quality_over_time(conn: Queryable, start: float, end: float, zone: ZoneInfo,
                       days: list[str], local: bool) -> dict[str, Any]:
    """Ratings of the period's delegations by when the delegation ran: per step, how many were rated, how
    many rated bad (the user overriding the router's choice of a cheaper model), overall and per category."""
    step = quality_step(len(days))

    def period(day: date) -> str:
        if step == "day":
            return day.isoformat()
        if step == "week":
            return (day - timedelta(days=day.weekday())).isoformat()
        return day.strftime("%Y-%m")

    periods = list(dict.fromkeys(period(date.fromisoformat(d)) for d in days))
    rated: dict[str, dict[str, list[int]]] = {p: defaultdict(lambda: [0, 0]) for p in periods}
    for ts, category, rating in conn.execute(
        "SELECT d.ts, COALESCE(f.category, d.category, 'unknown'), f.rating FROM feedback f"
        " JOIN delegations d ON d.id = f.delegation_id"
        # A delegation id is unique within one user's rows only (team m004): another writer may reuse it.
        + ("" if local else ' AND d."user" = f."user"') + " WHERE d.ts >= ? AND d.ts < ?", (start, end),
    ):
        counts = rated[period(datetime.fromtimestamp(ts, zone).date())][category]
        counts[0] += 1
        counts[1] += rating == "bad"
    rows = []
    for name in periods:
        total, bad = sum(c[0] for c in rated[name].values()), sum(c[1] for c in rated[name].values())
        rows.append({"period": name, "rated": total, "bad": bad,
                     "bad_rate": round(bad / total, 4) if total else None,
                     "by_category": {cat: {"rated": c[0], "bad": c[1]} for cat, c in sorted(rated[name].items())}})
    return {"step": step, "target_bad_rate": MAX_BAD_RATE, "periods": rows}


def _day_runs(first: int, last: int, zone: ZoneInfo) -> list[tuple[str, int, int]]:
    """The period's 15-minute buckets as runs of consecutive buckets on the same local day: (day, first
    bucket, bucket after the run). One run a day, unless a clock change crosses midnight backwards."""
    runs: list[tuple[str, int, int]] = []
    for bucket in range(first, last):
        day = datetime.fromtimestamp(bucket * BUCKET_SECONDS, zone).date().isoformat()
        if runs and runs[-1][0] == day:
            runs[-1] = (day, runs[-1][1], bucket + 1)
        else:
            runs.append((day, bucket, bucket + 1))
    return runs


def _activity_span(conn: Queryable, zone: ZoneInfo) -> tuple[date | None, date | None]:
    """The local days of the first and the last recorded response or delegation (two index lookups each)."""
    usage = conn.execute(f"SELECT MIN(bucket) * {BUCKET_SECONDS}, (MAX(bucket) + 1) * {BUCKET_SECONDS} - 1"
                         " FROM usage_rollup").fetchone()
    delegated = conn.execute("SELECT MIN(ts), MAX(ts) FROM delegations").fetchone()
    firsts = [ts for ts in (usage[0], delegated[0]) if ts is not None]
    lasts = [ts for ts in (usage[1], delegated[1]) if ts is not None]
    if not firsts:
        return None, None
    return (datetime.fromtimestamp(min(firsts), zone).date(), datetime.fromtimestamp(max(lasts), zone).date())


def _trimmed(spec: ReportSpec, first: date | None, last: date | None, today: date) -> ReportSpec:
    """--all: the days from the first activity to today (or the last activity, if later). A period longer than
    ``LONG_PERIOD_DAYS`` is trimmed to the same span; a shorter one is kept as asked."""
    if not spec.all_days and (spec.until - spec.since).days <= LONG_PERIOD_DAYS:
        return spec
    latest = max(today, last or today)
    until = latest if spec.all_days else min(spec.until, latest)
    since = (first or until) if spec.all_days else max(spec.since, first or until)
    return replace(spec, since=min(since, until), until=until)


def no_activity_note(report: dict[str, Any]) -> str | None:
    """For a report with no usage: when the latest activity was and how to see it."""
    if report["totals"]["messages"]:
        return None
    period = f"{report['since']} – {report['until']}"
    latest = report["latest_activity"]
    if latest is None:
        return (f"No Claude Code usage recorded yet ({period}). The ledger fills from the transcripts under"
                " ~/.claude/projects (`mcp-router ingest`) and from the hooks (`mcp-router install`).")
    return (f"No Claude Code usage in {period}. The latest activity was on {latest}: see it with"
            f" `mcp-router report --since {latest}`, or everything with `mcp-router report --all`.")


def _priced_cost(numbers: dict[str, Any]) -> float | None:
    """The cost of the priced responses; ``None`` when every response is of an unpriced model (unknown, not
    free). Where only some are unpriced, ``unpriced_messages`` says the cost leaves them out."""
    if numbers["messages"] and numbers["messages"] == numbers["unpriced_messages"]:
        return None
    return round(numbers["cost_usd"], 9)


def _days(since: date, until: date) -> list[str]:
    return [(since + timedelta(days=n)).isoformat() for n in range((until - since).days + 1)]


def _accumulate(target: dict[str, Any], numbers: tuple) -> None:
    for name, value in zip(TOKEN_FIELDS, numbers[:4], strict=True):
        target[name] += value or 0
    target["cost_usd"] += numbers[4]
    target["messages"] += numbers[5]
    target["unpriced_messages"] += numbers[6] or 0


def _top_sessions(conn: Queryable, start: float, end: float, limit: int = 5) -> list[dict[str, Any]]:
    return [
        {"session": r[0], "project": r[1],
         "cost_usd": _priced_cost({"cost_usd": r[2], "messages": r[3], "unpriced_messages": r[5]}),
         "messages": r[3], "first": datetime.fromtimestamp(r[4]).isoformat(timespec="minutes")}
        for r in conn.execute(
            f"SELECT session_id, MIN(project), COALESCE(SUM(cost_usd), 0.0) c, SUM(messages),"
            f" MIN(bucket) * {BUCKET_SECONDS}, SUM(unpriced_messages) FROM usage_rollup"
            " WHERE bucket >= ? AND bucket < ? GROUP BY session_id ORDER BY c DESC, session_id LIMIT ?",
            (start // BUCKET_SECONDS, end // BUCKET_SECONDS, limit))
    ]


def _usage_of(numbers: dict[str, Any]) -> Usage:
    return Usage(numbers["input_tokens"], numbers["output_tokens"], numbers["cache_read_tokens"],
                 numbers["cache_creation_tokens"], numbers["cache_creation_1h_tokens"])


def _cache_efficiency(by_model: dict[str, dict[str, Any]], catalog: Catalog) -> dict[str, Any]:
    prompt = sum(m["input_tokens"] + m["cache_read_tokens"] + m["cache_creation_tokens"] for m in by_model.values())
    read = sum(m["cache_read_tokens"] for m in by_model.values())
    saved = 0.0
    for model, numbers in by_model.items():
        info = catalog.find(model)
        if info is not None:
            saved += numbers["cache_read_tokens"] * (info.rates.input - info.rates.cache_read) / 1e6
    return {"prompt_tokens": prompt, "cache_read_tokens": read,
            "share_from_cache": round(read / prompt, 4) if prompt else 0.0, "saved_usd": round(saved, 6)}


def _what_if(by_model: dict[str, dict[str, Any]], catalog: Catalog, totals: dict[str, Any]) -> dict[str, Any]:
    """The same token counts repriced (per model group, so long-prompt switches are approximate)."""
    result: dict[str, Any] = {"actual_usd": round(totals["cost_usd"] or 0.0, 6)}
    for tier in ("haiku", "sonnet", "opus"):
        info = catalog.get(tier)
        result[f"all_{tier}_usd"] = round(sum(catalog.cost(info.id, _usage_of(n)) or 0 for n in by_model.values()), 6)
    return result


def _turns(conn: sqlite3.Connection, start: float, end: float) -> dict[str, tuple[list[float], list[str | None]]]:
    """Each session's prompts in the period and the day before it: (start times, routed tiers), in time order.

    The tier is the router's decision, made when the prompt was ingested (the text itself is not kept), or None
    for a prompt not routed yet (see ledger.PromptDecider)."""
    turns: dict[str, tuple[list[float], list[str | None]]] = defaultdict(lambda: ([], []))
    for session_id, ts, text in conn.execute(
        "SELECT session_id, ts, tier FROM prompts WHERE ts >= ? AND ts < ? ORDER BY session_id, ts",
        (start - PROMPT_LOOKBACK_SECONDS, end),
    ):
        starts, texts = turns[session_id]
        starts.append(ts)
        texts.append(text)
    return turns


def _bucket_turns(conn: sqlite3.Connection, start: float, end: float,
                  turns: dict[str, tuple[list[float], list[str | None]]]) -> list[tuple[str, int, int]]:
    """Copy the period's main-chain, priced rollup rows to ``temp.turn_rows``, each with the turns its bucket
    holds as an index into the list returned: (session, first turn, turn after the last).

    ``_as_routed`` then only ranks the spans and sums the copied rows by tier, in the order they were read.
    """
    spans: dict[tuple[str, int, int], int] = {}

    @cache  # a bucket holds a few rollup rows of its session (one a model, project, branch)
    def turn_span(session_id: str, bucket: int) -> int | None:
        session = turns.get(session_id)
        if session is None:
            return None
        first = bisect_right(session[0], bucket * BUCKET_SECONDS) - 1  # the turn running as the bucket opens
        last = bisect_right(session[0], (bucket + 1) * BUCKET_SECONDS - 1e-6)
        if first < 0:  # the session's first prompt comes within the bucket (or later)
            if last == 0:
                return None
            first = 0
        return spans.setdefault((session_id, first, last), len(spans))

    conn.create_function("turn_span", 2, turn_span, deterministic=True)
    conn.execute("DROP TABLE IF EXISTS temp.turn_rows")
    conn.execute(
        "CREATE TEMP TABLE turn_rows AS SELECT turn_span(session_id, bucket) AS span, input_tokens, output_tokens,"
        " cache_read_tokens, cache_creation_tokens, cache_creation_1h_tokens, cost_usd, messages FROM usage_rollup"
        " WHERE bucket >= ? AND bucket < ? AND agent = 'main' AND messages > 0 AND unpriced_messages = 0",
        (start // BUCKET_SECONDS, end // BUCKET_SECONDS),
    )
    return list(spans)


def _as_routed(conn: sqlite3.Connection, start: float, catalog: Catalog,
               turns: dict[str, tuple[list[float], list[str | None]]], spans: list[tuple[str, int, int]],
               ranks: dict[str, int], actual_usd: float) -> dict[str, Any]:
    """The same usage with each prompt's responses priced on the tier the router picks for the prompt.

    A turn is a main-session prompt and the main-chain responses until the next prompt. It is resolved to
    the 15-minute buckets of ``usage_rollup``, so the report never reads single responses: a bucket's
    main-chain usage goes to the tier of the turns it holds, the highest one where turns of different
    tiers share a bucket (so the estimate never flatters the router). Long-prompt rates and the US-only
    inference multiplier are approximated as in the other what-ifs. Subagent usage, sessions with no
    recorded prompt and unpriced models keep their cost, and so do buckets holding a turn whose prompt is not
    routed yet: the count of those prompts (``undecided_prompts``, only when there are some) says what the figure
    leaves out. ``turns`` and ``spans`` come from ``_turns`` and ``_bucket_turns``; ``ranks``: tier -> its index
    in ``_TIER_ORDER``.
    """
    span_ranks = [_span_rank(turns[session][1][first:last], ranks) for session, first, last in spans]
    period_tiers = [tier for starts, tiers in turns.values() for ts, tier in zip(starts, tiers, strict=True)
                    if ts >= start]
    prompt_ranks = [ranks[tier] for tier in period_tiers if tier is not None]
    conn.create_function("span_rank", 1, span_ranks.__getitem__, deterministic=True)
    covered_usd = routed_usd = 0.0
    responses = 0
    for rank, inputs, outputs, reads, writes, writes_1h, actual, count in conn.execute(
        "SELECT span_rank(span) AS rank, SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),"
        " SUM(cache_creation_tokens), SUM(cache_creation_1h_tokens), TOTAL(cost_usd), SUM(messages)"
        " FROM temp.turn_rows WHERE span IS NOT NULL GROUP BY rank",
    ) if spans else ():
        if rank is None:  # a turn not routed yet: its usage keeps its cost
            continue
        # Summed usage: base rates, since the long-prompt switch is per request.
        base_rates = replace(catalog.get(_TIER_ORDER[rank]), long_prompt=None)
        routed_usd += cost_usd(base_rates, Usage(inputs, outputs, reads, writes, writes_1h))
        covered_usd += actual
        responses += count
    conn.execute("DROP TABLE IF EXISTS temp.turn_rows")
    routed = {"prompts": len(prompt_ranks), "responses": responses,
              "prompts_by_tier": {tier: prompt_ranks.count(rank) for rank, tier in enumerate(_TIER_ORDER)}}
    if len(prompt_ranks) < len(period_tiers):
        routed["undecided_prompts"] = len(period_tiers) - len(prompt_ranks)
    return {"as_routed_usd": round(actual_usd - covered_usd + routed_usd, 6), "as_routed": routed}


def _span_rank(tiers: list[str | None], ranks: dict[str, int]) -> int | None:
    """The highest rank of a bucket's turns; None while one of them is not routed."""
    if None in tiers:
        return None
    return max(ranks[tier] for tier in tiers if tier is not None)


def _delegations(conn: Queryable, start: float, end: float, zone: ZoneInfo,
                 days: list[str]) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT COALESCE(category, 'unknown'), COUNT(*), COALESCE(SUM(cost_usd), 0.0), COALESCE(SUM(saved_usd), 0.0),"
        " SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) FROM delegations WHERE ts >= ? AND ts < ?"
        " GROUP BY 1 ORDER BY 4 DESC, 1",
        (start, end),
    ).fetchall()
    daily: dict[str, float] = defaultdict(float)
    for ts, saved in conn.execute("SELECT ts, saved_usd FROM delegations WHERE ts >= ? AND ts < ?"
                                  " AND outcome = 'ok'", (start, end)):
        daily[datetime.fromtimestamp(ts, zone).date().isoformat()] += saved or 0
    return {
        "count": sum(r[1] for r in rows), "succeeded": sum(r[4] or 0 for r in rows),
        "cost_usd": round(sum(r[2] for r in rows), 6), "saved_usd": round(sum(r[3] for r in rows), 6),
        "by_category": [{"category": r[0], "count": r[1], "cost_usd": round(r[2], 6), "saved_usd": round(r[3], 6)}
                        for r in rows],
        "saved_by_day": [{"day": d, "saved_usd": round(daily.get(d, 0.0), 6)} for d in days],
    }


def budget_section(conn: Queryable, config: Config, now: datetime | None = None) -> dict[str, Any]:
    """The report's budget section: month to date, its projection to the month's end, the cap."""
    return _budget(conn, config, now)


def _budget(conn: Queryable, config: Config, now: datetime | None) -> dict[str, Any]:
    current = budget_status(conn, config, now)
    moment = (now or datetime.now()).astimezone()
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (first + timedelta(days=32)).replace(day=1)
    elapsed = max((moment - first).total_seconds(), 3600.0)
    projection = current.month_to_date_usd * (next_month - first).total_seconds() / elapsed
    return {"month": current.month, "month_to_date_usd": round(current.month_to_date_usd, 6),
            "monthly_cap_usd": current.monthly_cap_usd, "projected_month_usd": round(projection, 2),
            "allowed": current.allowed}


def _recommendations(conn: Queryable, start: float, end: float, catalog: Catalog,
                     config: Config) -> list[dict[str, Any]]:
    advice: list[dict[str, Any]] = []
    chars = conn.execute("SELECT COALESCE(SUM(content_chars), 0) FROM tool_results WHERE ts >= ? AND ts < ?"
                         " AND is_sidechain = 0", (start, end)).fetchone()[0]
    tokens = int(chars / CHARS_PER_TOKEN)
    if tokens:
        main, haiku = catalog.find(config.main_model), catalog.find(config.delegate_model)
        main_cost = main.rates.input * tokens / 1e6 if main else None
        haiku_cost = haiku.rates.input * tokens / 1e6 if haiku else None
        text = f"About {tokens:,} main-model tokens went to reading tool results (file reads, logs, command output)"
        if main_cost is not None and haiku_cost is not None:
            text += (f": ${main_cost:,.2f} at {main.id} input prices, ${haiku_cost:,.2f} on {haiku.id}."  # type: ignore[union-attr]
                     " Hand large reads to delegate_to_haiku (/delegate).")
        advice.append({"kind": "delegate_tool_results", "tokens": tokens, "text": text})
    for row in conn.execute(
        "SELECT category, COUNT(*), SUM(CASE WHEN rating = 'bad' THEN 1 ELSE 0 END) FROM feedback GROUP BY category"
        " HAVING COUNT(*) >= 20"
    ):
        bad_rate = (row[2] or 0) / row[1]
        if bad_rate > MAX_BAD_RATE:
            advice.append({"kind": "promote", "category": row[0], "bad_rate": round(bad_rate, 4),
                           "text": f"'{row[0]}' delegations were rated bad {bad_rate:.0%} of the time"
                                   f" ({row[1]} rated): route it one tier up."})
        elif bad_rate == 0 and row[1] >= 50:
            advice.append({"kind": "keep_or_demote", "category": row[0], "bad_rate": 0.0,
                           "text": f"'{row[0]}' had no bad ratings in {row[1]}: it is safe on its current tier."})
    for row in conn.execute("SELECT category, tier, source, reason FROM category_overrides"):
        advice.append({"kind": "override", "category": row[0], "tier": row[1],
                       "text": f"'{row[0]}' is routed to {row[1]} ({row[2]}: {row[3]})."})
    return advice


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        import json

        return json.dumps(report, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        keys = [k for key in report["group_by"] for k in ((key, "project_path") if key == "project" else (key,))]
        fields = [*keys, *TOKEN_FIELDS, "cost_usd", "messages", "unpriced_messages"]
        writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(report["groups"])
        return out.getvalue()
    if fmt == "markdown":
        return _markdown(report)
    if fmt == "html":
        from .report_html import render_html

        return render_html(report)
    raise ValueError(f"unknown format {fmt!r}")


def format_share(share: float | None) -> str:
    """A share as a whole percentage that never rounds a little to nothing: "<1%", ">99%"."""
    if share is None:
        return "—"
    if 0 < share < 0.005:
        return "<1%"
    if 0.995 <= share < 1:
        return ">99%"
    return f"{share:.0%}"


def plural(count: int, word: str, many: str = "") -> str:
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The short prose under the tables, shared by the terminal and Markdown renderings."""
    totals, cache, what_if = report["totals"], report["cache"], report["what_if"]
    lines = [f"{plural(totals['messages'], 'response')}, {format_cost(totals['cost_usd'])}" + unpriced_note(report)]
    lines.append(f"Cache: {format_share(cache['share_from_cache'])} of prompt tokens served from cache,"
                 f" saving {format_usd(cache['saved_usd'])}")
    lines.append(f"What if: all on Haiku {format_usd(what_if['all_haiku_usd'])}, all on Sonnet"
                 f" {format_usd(what_if['all_sonnet_usd'])}, all on Opus {format_usd(what_if['all_opus_usd'])}")
    routed = what_if["as_routed"]
    if routed["prompts"]:
        by_tier = ", ".join(f"{n} {tier}" for tier, n in routed["prompts_by_tier"].items() if n)
        lines.append(f"As the router would have routed it: {format_usd(what_if['as_routed_usd'])}"
                     f" ({plural(routed['prompts'], 'prompt')}: {by_tier};"
                     f" {plural(routed['responses'], 'response')} repriced)")
    if routed.get("undecided_prompts"):
        lines.append(f"Not routed yet: {plural(routed['undecided_prompts'], 'prompt')} of this period, left out of"
                     " the as-routed figure (their turns keep their cost); the next report routes them while their"
                     " transcripts remain")
    delegations = report["delegations"]
    lines.append(f"Delegations: {delegations['count']} ({delegations['succeeded']} ok), cost"
                 f" {format_usd(delegations['cost_usd'])}, saved {format_usd(delegations['saved_usd'])}")
    reader, advice = delegations["haiku_reader"], report["advice"]
    if reader["runs"]:
        lines.append(f"Haiku reader: {reader['runs']} runs, cost {format_usd(reader['cost_usd'])},"
                     f" saved {format_usd(reader['saved_usd'])} against the sessions' main models")
    if advice["given"] or advice["guarded"]:
        per_category = ", ".join(f"{row['category']} {row['followed']}/{row['given']}" for row in advice["by_category"])
        guarded = ", ".join(f"{category} {n}" for category, n in advice["guarded"].items())
        lines.append(f"Routing advice: {advice['followed']} of {advice['given']} followed"
                     + (f" ({per_category})" if per_category else "")
                     + (f"; guarded delegations: {guarded}" if guarded else ""))
    budget = report["budget"]
    cap = f" of {format_usd(budget['monthly_cap_usd'])}" if budget["monthly_cap_usd"] else " (no cap)"
    lines.append(f"Budget {budget['month']}: {format_usd(budget['month_to_date_usd'])}{cap},"
                 f" on pace for {format_usd(budget['projected_month_usd'])}")
    lines += [f"- {advice['text']}" for advice in report["recommendations"]]
    return lines


def unpriced_note(report: dict[str, Any]) -> str:
    """What a total leaves out: the responses of models the catalog has no price for."""
    count = report["totals"]["unpriced_messages"]
    if not count:
        return ""
    models = ", ".join(report["unpriced_models"])
    return (f" (excludes {count:,} unpriced response{'s' if count != 1 else ''} of {models}:"
            " add prices under [pricing.models] in the config)")


def _markdown(report: dict[str, Any]) -> str:
    keys = report["group_by"]
    head = [*keys, "input", "output", "cache write", "cache read", "cost", "share"]
    lines = [f"# Claude Code usage {report['since']} – {report['until']} ({report['timezone']})", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group in report["groups"]:
        lines.append("| " + " | ".join([*(_md_cell(str(group[k])) for k in keys),
                                         *(f"{group[f]:,}" for f in TOKEN_FIELDS), format_cost(group["cost_usd"]),
                                         _md_cell(format_share(group["share"]))]) + " |")
    lines += ["", *summary_lines(report), ""]
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    """Text for a Markdown table cell: no "|" ends the cell early, no HTML passes through to the page."""
    return html.escape(text, quote=False).replace("\\", "\\\\").replace("|", "\\|")


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    keys = report["group_by"]
    table = Table(title=f"Claude Code usage {report['since']} – {report['until']} ({report['timezone']})",
                  box=None)
    for key in keys:
        table.add_column(key, overflow="fold")
    for header in ("input", "output", "cache w", "cache r", "cost", "share"):
        table.add_column(header, justify="right")
    for group in report["groups"]:
        table.add_row(*(escape(str(group[k])) for k in keys), *(_short(group[f]) for f in TOKEN_FIELDS),
                      format_cost(group["cost_usd"]), format_share(group["share"]))
    if not console.is_terminal:  # piped: as wide as the content, so no row or line wraps at 80 columns
        width = console.measure(table, options=console.options.update_width(100_000)).maximum
        console = Console(width=max(width, 80), soft_wrap=True)
    console.print(table)
    if report["top_sessions"]:
        console.print("Most expensive sessions: " + "; ".join(
            f"{s['session'][:8]} {escape(s['project'])} {format_cost(s['cost_usd'])}"
            for s in report["top_sessions"][:3]))
    for line in summary_lines(report):
        console.print(escape(line), highlight=False)


def _short(tokens: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if tokens >= size:
            return f"{tokens / size:.1f}{unit}"
    return str(tokens)
