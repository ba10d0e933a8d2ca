"""The report as one self-contained HTML page: inline CSS, HTML/CSS charts and one SVG donut; no scripts,
no network.

Charts are drawn in HTML rather than scaled SVG so that their text keeps its size on a phone: every bar
chart has a value axis with gridlines and the value over each bar, every chart says what would fill it
when it has nothing to show, and the page fits a 390 px screen without sideways scrolling.
"""

from __future__ import annotations

import math
from datetime import date
from html import escape
from typing import Any

from .feedback import MAX_BAD_RATE
from .pricing import format_cost, format_usd
from .report import format_share, plural

PALETTE = ["#d97757", "#6a9bcc", "#788c5d", "#c4a35a", "#8e6fb5", "#5aa6a0", "#b85c7a", "#7d7d7d"]
GOOD, BAD = "#788c5d", "#bf4d43"
CHAR_PX = 7  # about the width of a 12 px character: bars narrower than their value labels hide them
MAX_TICK_LABELS = 8
LABEL_GAP = 0.08  # a 12 px axis label is about 8% of the 190 px plot
MAX_DAY_COLUMNS = 31  # more days than this are drawn per week, more weeks than this per month

CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:960px;padding:16px;color:#222;background:#faf9f5}
h1{font-size:1.4em;line-height:1.25} h1 small{font-weight:normal;color:#666} .nw{white-space:nowrap}
h2{font-size:1.1em;margin:1.8em 0 .5em} p.note,figcaption.note{margin:.2em 0 .6em;color:#555;font-size:13px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px}
.card{background:#fff;border-radius:8px;padding:10px 12px;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:1.3em}
.panel{background:#fff;border-radius:8px;padding:12px;box-shadow:0 1px 2px #0002}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:center}
.donut{width:200px;height:200px} .big{font-size:20px;font-weight:600}
ul.legend{list-style:none;padding:0;margin:.4em 0;display:flex;flex-wrap:wrap;gap:4px 14px;font-size:13px}
ul.legend span{display:inline-block;width:12px;height:12px;margin-right:5px;border-radius:2px;vertical-align:-1px}
.bars{container-type:inline-size;margin:0}
.plot{position:relative;height:190px;margin:22px 0 0 52px;border-bottom:1px solid #999}
.grid{position:absolute;left:0;right:0;border-top:1px solid #eee;height:0}
.grid span{position:absolute;right:100%;margin-right:6px;transform:translateY(-50%);font-size:12px;color:#555;
 white-space:nowrap}
.target{border-top:2px dashed #bf4d43;z-index:1} .target span{color:#bf4d43;font-weight:600}
.dash{display:inline-block;width:18px;margin-right:6px;border-top:2px dashed #bf4d43;vertical-align:middle}
.cols{position:absolute;inset:0;display:grid;gap:3px}
.col{position:relative;display:flex;flex-direction:column;justify-content:flex-end}
.stack{position:relative;display:flex;flex-direction:column-reverse;min-height:1px}
.seg{display:block;min-height:1px}
.val{position:absolute;bottom:100%;left:50%;transform:translateX(-50%);font-size:12px;color:#333;
 white-space:nowrap;padding-bottom:1px}
.xl{display:grid;gap:3px;margin-left:52px;font-size:12px;color:#555;text-align:center;white-space:nowrap}
.xl i{font-style:normal}
.hbars{display:grid;grid-template-columns:minmax(0,max-content) minmax(60px,1fr) max-content;gap:6px 10px;
 align-items:center;font-size:13px}
.hbars .name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.track{position:relative;height:16px;background:#f3f1ea;border-radius:3px}
.track i{position:absolute;left:0;top:0;bottom:0;border-radius:3px}
.track .line{position:absolute;top:-3px;bottom:-3px;border-left:2px dashed #bf4d43}
.scale{display:flex;justify-content:space-between;font-size:12px;color:#555;grid-column:2}
table{border-collapse:collapse;width:100%;background:#fff;font-size:14px}
td,th{padding:4px 8px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap} td.n,th.n{text-align:right}
.scroll{overflow-x:auto} .empty{color:#666;background:#fff;border-radius:8px;padding:10px 12px;margin:0;
 border:1px dashed #ccc}
.heat{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:10px 12px;align-items:start;font-size:13px}
.tiles{list-style:none;margin:0;padding:0;display:grid;gap:3px}
.tile{text-align:center;border-radius:3px;padding:2px 0;line-height:1.3;font-variant-numeric:tabular-nums}
.tile small{display:block;font-size:11px;color:#555} .tile.none,.tile.none small{color:#aaa}
code{font-size:13px}
@media (max-width:500px){body{padding:10px;font-size:14px} h1{font-size:1.2em} .donut{width:160px;height:160px}
 table{font-size:13px} td,th{padding:4px 5px} .heat{grid-template-columns:minmax(0,1fr);gap:4px}
 .hname{margin-top:6px} .wide{display:none}}
"""


def _nice_step(peak: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) so that ``ticks`` steps cover ``peak``; never 2.5
    cents or less, which labels to whole cents cannot print exactly ($0.025 shows as $0.03)."""
    if peak <= 0:
        return 1.0
    raw = peak / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw and (m != 2.5 or power >= 0.1))


def _money(value: float) -> str:
    if value == 0:
        return "$0"
    if value >= 10_000:
        return f"${value / 1000:,.0f}k"
    if value >= 1000:
        return f"${value / 1000:.1f}k"
    if value >= 100:
        return f"${value:,.0f}"
    return format_usd(value) if value < 0.01 else f"${value:.2f}"


def _tick(value: float) -> str:
    return f"${value:,.0f}" if value == int(value) and value < 1000 else _money(value)


def _whole_dollars(value: float) -> str:
    return f"${value:,.0f}" if 10 <= value < 1000 else _money(value)


def _day_label(day: str) -> str:
    if len(day) == 7:  # a month, YYYY-MM
        return date.fromisoformat(day + "-01").strftime("%b %Y")
    return date.fromisoformat(day).strftime("%b %-d")


def _axis_labels(periods: list[str]) -> list[str]:
    """Short labels for a time axis: the month where it starts or changes ("Nov 30", "Dec 1"), else the day
    ("17"); months as "Nov", with the year where it starts or changes."""
    labels, shown = [], ""
    for period in periods:
        if len(period) == 7:
            labels.append(_day_label(period) if period[:4] != shown[:4] else _day_label(period)[:3])
        else:
            labels.append(_day_label(period) if period[:7] != shown[:7] else str(int(period[8:])))
        shown = period
    return labels


def _sparse_labels(periods: list[str], stride: int) -> list[str]:
    """The axis labels of every ``stride``-th period, "" for the others."""
    shown = _axis_labels(periods[::stride])
    return [shown[index // stride] if index % stride == 0 else "" for index in range(len(periods))]


def _buckets(days: list[tuple[str, dict[str, float]]]) -> tuple[str, list[tuple[str, dict[str, float]]]]:
    """Days summed into weeks (from the period's first day, so no label falls before it) or calendar months
    when there are too many to draw as columns a phone can show; with the unit: "day", "week" or "month"."""
    if len(days) <= MAX_DAY_COLUMNS:
        return "day", days
    unit = "week" if len(days) <= 7 * MAX_DAY_COLUMNS else "month"
    merged: dict[str, dict[str, float]] = {}
    for index, (day, values) in enumerate(days):
        name = days[index - index % 7][0] if unit == "week" else day[:7]
        into = merged.setdefault(name, {})
        for key, value in values.items():
            into[key] = into.get(key, 0.0) + value
    return unit, list(merged.items())


def _empty(text: str) -> str:
    return f'<p class="empty">{text}</p>'


def _column_chart(label: str, columns: list[tuple[str, dict[str, float], str, str]], colors: dict[str, str],
                  fmt: Any = _tick, target: tuple[float, str] | None = None, peak_at_least: float = 0.0,
                  unit: str = "day") -> str:
    """Stacked columns over a value axis. ``columns``: (x label, {series: value}, value label over the
    column and a shorter one for narrow columns, "" for none); ``target``: a dashed line at a value, with
    its caption; ``unit``: what a column of dates covers ("week" columns are named by their first day)."""
    peak = max([sum(c[1].values()) for c in columns] + [peak_at_least, target[0] if target else 0])
    step = _nice_step(peak)
    top = step * max(1, math.ceil(peak / step - 1e-9))
    # A gridline label closer to the target line than a label's height would overlap the target's own label.
    near = [abs(n * step - target[0]) / top < LABEL_GAP if target else False for n in range(round(top / step) + 1)]
    grid = "".join(f'<div class="grid" style="bottom:{100 * n * step / top:.3f}%">'
                   + ("" if near[n] else f"<span>{escape(fmt(n * step))}</span>") + "</div>"
                   for n in range(len(near)))
    caption = ""
    if target:
        grid += (f'<div class="grid target" style="bottom:{100 * target[0] / top:.3f}%"><span>{escape(fmt(target[0]))}</span>'
                 "</div>")
        caption = f'<i class="dash"></i>{escape(target[1])}'
    count = len(columns)
    cols = []
    for name, values, value_label, short_label in columns:
        total = sum(values.values())
        segs = "".join(f'<i class="seg" style="flex:{v / total:.6f} 1 0;background:{colors.get(k, PALETTE[0])}"'
                       f' title="{"week of " if unit == "week" else ""}{escape(_day_label(name))} {escape(k)}: {escape(fmt(v))}"></i>'
                       for k, v in sorted(values.items()) if v > 0)
        shown = (f'<b class="val"><span class="full">{escape(value_label)}</span>'
                 f'<span class="short">{escape(short_label)}</span></b>' if value_label else "")
        height = f"{100 * total / top:.3f}%" if total > 0 else "0"
        cols.append(f'<div class="col"><div class="stack" style="height:{height}">{shown}{segs}</div></div>')
    # Time labels at a stride, and at twice it on a chart too narrow for them (each set names the month where
    # it changes among its own labels).
    stride = 1 if count <= MAX_TICK_LABELS else math.ceil(count / MAX_TICK_LABELS)
    levels = [_sparse_labels([c[0] for c in columns], step) for step in (stride, 2 * stride)]
    ticks = "".join(f'<span><i class="l1">{escape(wide)}</i><i class="l2">{escape(narrow)}</i></span>'
                    for wide, narrow in zip(*levels, strict=True))
    tick_px = max([CHAR_PX * len(text) + 10 for text in levels[0][1:] if text] + [0]) / stride
    template = f"grid-template-columns:repeat({count},minmax(0,1fr))"
    chart_id = "c" + "".join(ch for ch in label if ch.isalnum())
    # A chart too narrow for its value labels shows the short ones, then none: the axis still reads the values.
    full_px, short_px = (CHAR_PX * max(len(c[i]) for c in columns) + 4 for i in (2, 3))
    hide = (f"<style>#{chart_id} .short{{display:none}}"
            f"@container (max-width:{count * full_px + 52}px){{#{chart_id} .full{{display:none}}"
            f" #{chart_id} .short{{display:inline}}}}"
            f"@container (max-width:{count * short_px + 52}px){{#{chart_id} .val{{display:none}}}}"
            f"#{chart_id} .l2{{display:none}}@container (max-width:{count * tick_px + 52:.0f}px)"
            f"{{#{chart_id} .l1{{display:none}} #{chart_id} .l2{{display:inline}}}}</style>")
    notes = " ".join(note for note in (f"One column per {unit}." if unit != "day" else "", caption) if note)
    per = f'<figcaption class="note">{notes}</figcaption>' if notes else ""
    return (f'{hide}<figure class="bars panel" id="{chart_id}" role="img" aria-label="{escape(label)}">{per}'
            f'<div class="plot">{grid}<div class="cols" style="{template}">{"".join(cols)}</div></div>'
            f'<div class="xl" style="{template}">{ticks}</div></figure>')


def _hbars(label: str, rows: list[tuple[str, float, str, str]], peak: float, scale: tuple[str, str],
           line_at: float | None = None) -> str:
    """Horizontal bars, each with its name and value written out. ``rows``: (name, value, text, color);
    ``scale``: the captions of the axis's two ends; ``line_at``: a dashed limit line (a value)."""
    peak = peak or 1.0
    line = f'<span class="line" style="left:{100 * line_at / peak:.2f}%"></span>' if line_at is not None else ""
    body = "".join(
        f'<span class="name" title="{escape(name)}">{escape(name)}</span><div class="track">'
        f'<i style="width:{max(0.5, 100 * value / peak):.2f}%;background:{color}"></i>{line}</div>'
        f'<span class="num">{escape(text)}</span>'
        for name, value, text, color in rows
    )
    return (f'<div class="hbars panel" role="img" aria-label="{escape(label)}">{body}'
            f'<div class="scale"><span>{escape(scale[0])}</span><span>{escape(scale[1])}</span></div></div>')


def _donut(costs: dict[str, float], colors: dict[str, str]) -> str:
    total = sum(costs.values())
    parts, angle = [], -math.pi / 2
    for model, cost in sorted(costs.items(), key=lambda kv: -kv[1]):
        sweep = 2 * math.pi * cost / total
        if sweep >= 2 * math.pi - 1e-9:
            parts.append(f'<circle cx="100" cy="100" r="70" fill="none" stroke="{colors[model]}" stroke-width="36"/>')
            break
        x1, y1 = 100 + 70 * math.cos(angle), 100 + 70 * math.sin(angle)
        angle += sweep
        x2, y2 = 100 + 70 * math.cos(angle), 100 + 70 * math.sin(angle)
        large = 1 if sweep > math.pi else 0
        parts.append(f'<path d="M{x1:.2f},{y1:.2f} A70,70 0 {large} 1 {x2:.2f},{y2:.2f}" fill="none" '
                     f'stroke="{colors[model]}" stroke-width="36"><title>{escape(model)}: {format_usd(cost)}</title></path>')
    return (f'<svg class="donut" viewBox="0 0 200 200" role="img" aria-label="cost by model">{"".join(parts)}'
            f'<text x="100" y="107" text-anchor="middle" class="big">{_money(total)}</text></svg>')


def _by_model(report: dict[str, Any], costs: dict[str, float], colors: dict[str, str]) -> str:
    requests = report["requests_by_model"]
    if not requests:
        return (_empty("No Claude Code usage in this period. It fills from your transcripts: through the hooks"
                       " (<code>mcp-router install</code>) or <code>mcp-router ingest</code>.")
                + '<h2>Requests by model</h2><div id="requests">'
                + _empty("No API response in this period. Each model's count of responses shows here as a bar,"
                         " with its share of all of them.") + "</div>")
    total_cost = sum(costs.values())
    legend = "".join(f'<li><span style="background:{colors[m]}"></span>{escape(m)} {format_usd(c)}'
                     f" ({escape(format_share(c / total_cost))})</li>" for m, c in sorted(costs.items(), key=lambda kv: -kv[1]))
    donut = _donut(costs, colors) if total_cost > 0 else _empty("No priced usage in this period.")
    peak, total = max(requests.values()), sum(requests.values())
    rows = [(m, n, f"{n:,} ({format_share(n / total)})", colors.get(m, PALETTE[-1])) for m, n in requests.items()]
    return (f'<div class="row" id="by-model">{donut}<ul class="legend">{legend}</ul></div>'
            f'<h2>Requests by model</h2><div id="requests"><p class="note">API responses per model'
            f' ({plural(total, "response")}).</p>' + _hbars("requests by model", rows, peak, ("0", f"{peak:,}"))
            + "</div>")


def _quality_heat(quality: dict[str, Any]) -> str:
    periods = quality["periods"]
    categories = sorted({c for p in periods for c in p["by_category"]})
    if not categories:
        return _empty("No delegation of this period has been rated yet. Each rating (<code>mcp-router feedback"
                      " ID good|bad</code>) fills a tile: the share of a category's delegations rated good.")
    # Tiles that wrap rather than a table that scrolls sideways on a phone: every row's tiles share one width,
    # so they wrap alike and a period stays in the same place in every row.
    tile_px = CHAR_PX * max(len(_day_label(p["period"])) for p in periods) + 6
    columns = f"grid-template-columns:repeat(auto-fit,minmax({tile_px}px,1fr))"
    rows = []
    for category in categories:
        cells = []
        for p in periods:
            counts, label = p["by_category"].get(category), f"<small>{escape(_day_label(p['period']))}</small>"
            if not counts:
                cells.append(f'<li class="tile none">{label}–</li>')
                continue
            good = 1 - counts["bad"] / counts["rated"]
            tint = GOOD if counts["bad"] / counts["rated"] < quality["target_bad_rate"] else BAD  # target: under
            cells.append(f'<li class="tile" style="background:{tint}{int(40 + 160 * (1 - good if tint == BAD else good)):02x}"'
                         f' title="{escape(category)}, {p["period"]}: {counts["rated"] - counts["bad"]} of'
                         f' {counts["rated"]} rated good">{label}{escape(format_share(good))}</li>')
        rows.append(f'<b class="hname">{escape(category)}</b><ul class="tiles" style="{columns}">{"".join(cells)}</ul>')
    return f'<div class="heat panel" role="group" aria-label="quality by category over time">{"".join(rows)}</div>'


def _override_chart(quality: dict[str, Any]) -> str:
    periods = quality["periods"]
    target = quality["target_bad_rate"]
    if not any(p["rated"] for p in periods):
        return _empty("No delegation of this period has been rated yet. Rated delegations show here as the share"
                      " rated bad (the user overriding the cheaper model) per " + quality["step"]
                      + f", against the {target:.0%} target.")
    columns = [(p["period"], {"over" if (p["bad_rate"] or 0) >= target else "ok": p["bad_rate"] or 0.0},
                *((f"{format_share(p['bad_rate'])} of {p['rated']}", format_share(p["bad_rate"])) if p["rated"]
                  else ("", ""))) for p in periods]
    return _column_chart("override share over time", columns, {"ok": GOOD, "over": BAD}, fmt=lambda v: f"{v:.0%}",
                         target=(target, f"target < {target:.0%}"), peak_at_least=0.1)


def _quality_bars(categories: list[dict[str, Any]]) -> str:
    """Per category, every rating so far: the share rated bad, beside the line above which it is promoted."""
    if not categories:
        return _empty("No delegation has been rated yet (the <code>rate_delegation</code> tool, or"
                      f" <code>mcp-router feedback ID good|bad</code>). A category rated bad more than {MAX_BAD_RATE:.0%} of"
                      " the time moves one tier up.")
    peak = max(0.1, max(c["bad_rate"] for c in categories))
    rows = [(c["category"] + (f" → {c['override_tier']}" if c["override_tier"] else ""), c["bad_rate"],
             f"{format_share(c['bad_rate'])} of {c['rated']}", BAD if c["bad_rate"] > MAX_BAD_RATE else GOOD)
            for c in sorted(categories, key=lambda c: -c["bad_rate"])]
    return _hbars("feedback quality by category", rows, peak, ("0%", f"{peak:.0%} rated bad"), line_at=MAX_BAD_RATE)


def _sessions(report: dict[str, Any]) -> str:
    sessions = report["top_sessions"]
    if not sessions:
        return _empty("No session in this period.")
    rows = "".join(f"<tr><td><code>{escape(s['session'][:8])}</code></td><td>{escape(str(s['project']))}</td>"
                   f"<td class=wide>{escape(s['first'].replace('T', ' '))}</td><td class=n>{s['messages']:,}</td>"
                   f"<td class=n>{format_cost(s['cost_usd'])}</td></tr>" for s in sessions)
    return (f'<div class="scroll"><table id="sessions"><tr><th>session</th><th>project</th><th class=wide>started</th>'
            f'<th class=n>responses</th><th class=n>cost</th></tr>{rows}</table></div>')


def _groups(report: dict[str, Any]) -> str:
    keys = report["group_by"]
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(str(g[k]))}</td>" for k in keys)
        + f"<td class='n wide'>{g['input_tokens'] + g['cache_read_tokens'] + g['cache_creation_tokens']:,}</td>"
        f"<td class='n wide'>{g['output_tokens']:,}</td><td class=n>{format_cost(g['cost_usd'])}</td>"
        f"<td class=n>{escape(format_share(g['share']))}</td></tr>"
        for g in report["groups"]
    )
    if not rows:
        return _empty("Nothing to group in this period.")
    head = "".join(f"<th>{escape(k)}</th>" for k in keys)
    return (f'<div class="scroll"><table id="groups"><tr>{head}<th class="n wide">prompt tokens</th><th class="n wide">output</th>'
            f"<th class=n>cost</th><th class=n>share</th></tr>{rows}</table></div>")


def _people(people: list[dict[str, Any]]) -> str:
    """The team report's cost per person, largest first, each with its share of the team's spend."""
    costs = [p["cost_usd"] or 0.0 for p in people]  # None: only unpriced responses
    total, peak = sum(costs), max(costs)
    rows = [(p["user"], cost, f"{format_usd(cost)} ({format_share(cost / total if total else 0)})"
             if p["cost_usd"] is not None else "unpriced", PALETTE[i % len(PALETTE)])
            for i, (p, cost) in enumerate(zip(people, costs, strict=True))]
    return _hbars("cost per person", rows, peak, ("$0", _money(peak)))


def render_html(report: dict[str, Any]) -> str:
    costs: dict[str, float] = {}
    for day in report["daily"]:
        for model, cost in day["cost_by_model"].items():
            if cost:
                costs[model] = costs.get(model, 0.0) + cost
    models = sorted(set(costs) | set(report["requests_by_model"]), key=lambda m: (-costs.get(m, 0.0), m))
    colors = {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(models)}
    period = f"{report['since']} and {report['until']}"
    unpriced_legend = "".join(f"<li><span></span>{escape(m)} unpriced ({plural(n, 'response')})</li>"
                              for m, n in report["unpriced_models"].items() if m not in costs)
    unit, cost_columns = _buckets([(d["day"], {m: c for m, c in d["cost_by_model"].items() if c})
                                   for d in report["daily"]])
    if costs:
        daily = _column_chart("daily cost by model", [
            (name, values, _money(total), _whole_dollars(total))
            for name, values in cost_columns for total in [sum(values.values())]], colors, unit=unit)
        legend = "".join(f'<li><span style="background:{colors[m]}"></span>{escape(m)}</li>' for m in models
                         if m in costs)
        daily = f'<ul class="legend">{legend}{unpriced_legend}</ul>{daily}'
    else:
        daily = _empty(f"No priced usage between {period}. Each day's cost shows here as a bar split by model.")
        if unpriced_legend:
            daily = f'<ul class="legend">{unpriced_legend}</ul>{daily}'
    delegations = report["delegations"]
    if delegations["count"]:
        saved_unit, saved_columns = _buckets([(d["day"], {"saved": d["saved_usd"]})
                                              for d in delegations["saved_by_day"]])
        saved = _column_chart("delegation savings per day", [
            (name, values, *((_money(values["saved"]), _whole_dollars(values["saved"])) if values["saved"]
                             else ("", "")))
            for name, values in saved_columns], {"saved": GOOD}, unit=saved_unit)
    else:
        saved = _empty(f"No delegation between {period}. Work handed to Haiku (<code>/delegate</code>) shows"
                       " here as what it saved, per day.")
    advice = "".join(f"<li>{escape(a['text'])}</li>" for a in report["recommendations"]) or "<li>Nothing to change.</li>"
    people = f'<h2>Per person</h2><div id="people">{_people(report["people"])}</div>\n' if report.get("people") else ""
    totals, budget, cache = report["totals"], report["budget"], report["cache"]
    cap = format_usd(budget["monthly_cap_usd"]) if budget["monthly_cap_usd"] else "no cap"
    unpriced = totals["unpriced_messages"]
    excludes = (f"; excludes {unpriced:,} unpriced ({escape(', '.join(report['unpriced_models']))})"
                if unpriced else "")
    what_if = report["what_if"]
    pending = what_if["as_routed"].get("undecided_prompts")
    undecided = f"; {plural(pending, 'prompt')} not routed yet, left out" if pending else ""
    quality = report["quality_over_time"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mcp-router report {report['since']} – {report['until']}</title>
<style>{CSS}</style></head><body>
<h1>Claude Code usage <span class="nw">{report['since']}</span> – <span class="nw">{report['until']}</span>
<small class="nw">({escape(report['timezone'])})</small></h1>
<div class="cards">
<div class="card">Spent<b>{format_cost(totals['cost_usd'])}</b>{plural(totals['messages'], 'response')}{excludes}</div>
<div class="card">Saved by delegation<b>{format_usd(delegations['saved_usd'])}</b>{plural(delegations['count'], 'delegation')}</div>
<div class="card">From cache<b>{escape(format_share(cache['share_from_cache']))}</b>saved {format_usd(cache['saved_usd'])}</div>
<div class="card">As the router would route it<b>{format_usd(what_if['as_routed_usd'])}</b>all Opus {format_usd(what_if['all_opus_usd'])}, all Sonnet {format_usd(what_if['all_sonnet_usd'])}{undecided}</div>
<div class="card">Month to date<b>{format_usd(budget['month_to_date_usd'])}</b>{cap}, pace {format_usd(budget['projected_month_usd'])}</div>
</div>
<h2>Cost by model</h2>{_by_model(report, costs, colors)}
{people}<h2>Daily cost by model</h2><div id="daily">{daily}</div>
<h2>Delegation savings over time</h2><div id="savings">{saved}</div>
<h2>Quality overrides over time</h2><p class="note">Share of rated delegations rated bad: the cheaper model's answer
needed overriding. Target: under {quality['target_bad_rate']:.0%}.</p><div id="overrides">{_override_chart(quality)}</div>
<h2>Quality by task category over time</h2><p class="note">Share of each category's rated delegations rated good,
per {quality['step']}.</p><div id="quality-over-time">{_quality_heat(quality)}</div>
<h2>Quality by task category, all ratings</h2><div id="quality">{_quality_bars(report['feedback'])}</div>
<h2>Most expensive sessions</h2>{_sessions(report)}
<h2>By {escape(', '.join(report['group_by']))}</h2>{_groups(report)}
<h2>What to change</h2><ul>{advice}</ul>
</body></html>
"""
