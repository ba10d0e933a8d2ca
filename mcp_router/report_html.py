"""The report as one self-contained HTML page: inline CSS and SVG charts, no scripts, no network."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from .pricing import format_cost, format_usd

PALETTE = ["#d97757", "#6a9bcc", "#788c5d", "#c4a35a", "#8e6fb5", "#5aa6a0", "#b85c7a", "#7d7d7d"]


def _donut(costs: dict[str, float], colors: dict[str, str]) -> str:
    total = sum(costs.values())
    if total <= 0:
        return "<p class=empty>No priced usage in this period.</p>"
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
    return (f'<svg class="chart donut" viewBox="0 0 200 200" role="img" aria-label="cost by model">{"".join(parts)}'
            f'<text x="100" y="106" text-anchor="middle" class="big">{format_usd(total)}</text></svg>')


def _bars(series: list[tuple[str, dict[str, float]]], colors: dict[str, str], label: str) -> str:
    if not series:
        return "<p class=empty>Nothing in this period.</p>"
    peak = max(sum(values.values()) for _, values in series) or 1.0
    width, height, gap = 600, 220, 4
    bar = (width - gap * len(series)) / len(series)
    parts = []
    for index, (name, values) in enumerate(series):
        x, y = index * (bar + gap), float(height - 20)
        for key, value in sorted(values.items()):
            h = (height - 30) * value / peak
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colors.get(key, PALETTE[0])}">'
                         f"<title>{escape(name)} {escape(key)}: {format_usd(value)}</title></rect>")
        if len(series) <= 14 or index % max(1, len(series) // 7) == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 5}" text-anchor="middle" class="tick">'
                         f"{escape(name[5:])}</text>")
    return (f'<svg class="chart bars" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
            f'{"".join(parts)}</svg>')


def _quality(categories: list[dict[str, Any]]) -> str:
    """Per category, the share of rated delegations rated bad (the user overriding the router), beside
    the 5% line above which a category is promoted."""
    if not categories:
        return "<p class=empty>No delegation has been rated yet (rate_delegation, or mcp-router feedback).</p>"
    width, row = 600, 26
    height = row * len(categories) + 24
    scale = max(0.1, max(c["bad_rate"] for c in categories))
    limit_x = 160 + 400 * 0.05 / scale
    parts = [f'<line x1="{limit_x:.1f}" y1="0" x2="{limit_x:.1f}" y2="{height - 20}" stroke="#bf4d43" '
             f'stroke-dasharray="4 3"/><text x="{limit_x:.1f}" y="{height - 6}" class="tick">5%</text>']
    for index, c in enumerate(sorted(categories, key=lambda c: -c["bad_rate"])):
        y = index * row
        color = "#bf4d43" if c["bad_rate"] > 0.05 else "#788c5d"
        tier = f" → {c['override_tier']}" if c["override_tier"] else ""
        parts.append(f'<text x="0" y="{y + 17}" class="tick">{escape(c["category"])}{escape(tier)}</text>'
                     f'<rect x="160" y="{y + 4}" width="{max(1.0, 400 * c["bad_rate"] / scale):.1f}" height="{row - 8}" fill="{color}">'
                     f'<title>{escape(c["category"])}: {c["bad"]} of {c["rated"]} rated bad</title></rect>'
                     f'<text x="{566}" y="{y + 17}" class="tick">{c["bad_rate"]:.0%} of {c["rated"]}</text>')
    return (f'<svg class="chart bars" viewBox="0 0 {width} {height}" role="img" aria-label="feedback quality by category">'
            f'{"".join(parts)}</svg>')


def render_html(report: dict[str, Any]) -> str:
    costs: dict[str, float] = {}
    for day in report["daily"]:
        for model, cost in day["cost_by_model"].items():
            if cost is not None:
                costs[model] = costs.get(model, 0.0) + cost
    colors = {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(sorted(costs, key=lambda m: -costs[m]))}
    legend = "".join(f'<li><span style="background:{colors[m]}"></span>{escape(m)} {format_usd(c)}</li>'
                     for m, c in sorted(costs.items(), key=lambda kv: -kv[1]))
    legend += "".join(f"<li><span></span>{escape(m)} unpriced ({n:,} responses)</li>"
                      for m, n in report["unpriced_models"].items() if m not in costs)
    daily = _bars([(d["day"], {m: c for m, c in d["cost_by_model"].items() if c is not None})
                   for d in report["daily"]], colors, "daily cost by model")
    delegations = report["delegations"]
    saved = _bars([(d["day"], {"saved": d["saved_usd"]}) for d in delegations["saved_by_day"]],
                  {"saved": "#788c5d"}, "delegation savings per day")
    quality = _quality(report["feedback"])
    keys = report["group_by"]
    group_rows = "".join(
        "<tr>" + "".join(f"<td>{escape(str(g[k]))}</td>" for k in keys)
        + f"<td>{g['input_tokens'] + g['cache_read_tokens'] + g['cache_creation_tokens']:,}</td>"
        f"<td>{g['output_tokens']:,}</td><td>{format_cost(g['cost_usd'])}</td>"
        f"<td>{'—' if g['share'] is None else format(g['share'], '.0%')}</td></tr>"
        for g in report["groups"]
    )
    advice = "".join(f"<li>{escape(a['text'])}</li>" for a in report["recommendations"]) or "<li>Nothing to change.</li>"
    totals, budget, cache = report["totals"], report["budget"], report["cache"]
    cap = format_usd(budget["monthly_cap_usd"]) if budget["monthly_cap_usd"] else "no cap"
    unpriced = totals["unpriced_messages"]
    excludes = (f"; excludes {unpriced:,} unpriced ({escape(', '.join(report['unpriced_models']))})"
                if unpriced else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mcp-router report {report['since']} – {report['until']}</title>
<style>
body{{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:960px;padding:16px;color:#222;background:#faf9f5}}
h1{{font-size:1.4em}} h2{{font-size:1.1em;margin-top:1.6em}}
.cards{{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px}}
.card{{background:#fff;border-radius:8px;padding:10px 12px;box-shadow:0 1px 2px #0002}}
.card b{{display:block;font-size:1.3em}}
.chart{{width:100%;height:auto;background:#fff;border-radius:8px}} .donut{{max-width:260px}}
.big{{font-size:20px;font-weight:600}} .tick{{font-size:11px;fill:#666}}
.row{{display:flex;flex-wrap:wrap;gap:16px;align-items:center}}
ul.legend{{list-style:none;padding:0}} ul.legend span{{display:inline-block;width:12px;height:12px;margin-right:6px;border-radius:2px}}
table{{border-collapse:collapse;width:100%;background:#fff}} td,th{{padding:4px 8px;border-bottom:1px solid #eee;text-align:left}}
.scroll{{overflow-x:auto}} .empty{{color:#777}}
</style></head><body>
<h1>Claude Code usage {report['since']} – {report['until']} <small>({escape(report['timezone'])})</small></h1>
<div class="cards">
<div class="card">Spent<b>{format_cost(totals['cost_usd'])}</b>{totals['messages']:,} responses{excludes}</div>
<div class="card">Saved by delegation<b>{format_usd(delegations['saved_usd'])}</b>{delegations['count']} delegations</div>
<div class="card">From cache<b>{cache['share_from_cache']:.0%}</b>saved {format_usd(cache['saved_usd'])}</div>
<div class="card">As the router would route it<b>{format_usd(report['what_if']['as_routed_usd'])}</b>all Opus {format_usd(report['what_if']['all_opus_usd'])}, all Sonnet {format_usd(report['what_if']['all_sonnet_usd'])}</div>
<div class="card">Month to date<b>{format_usd(budget['month_to_date_usd'])}</b>{cap}, pace {format_usd(budget['projected_month_usd'])}</div>
</div>
<h2>Cost by model</h2><div class="row" id="by-model">{_donut(costs, colors)}<ul class="legend">{legend}</ul></div>
<h2>Daily cost by model</h2><div id="daily">{daily}</div>
<h2>Delegation savings over time</h2><div id="savings">{saved}</div>
<h2>Feedback quality by category</h2><div id="quality">{quality}</div>
<h2>By {escape(', '.join(keys))}</h2><div class="scroll"><table><tr>{''.join(f'<th>{escape(k)}</th>' for k in keys)}<th>prompt tokens</th><th>output</th><th>cost</th><th>share</th></tr>{group_rows}</table></div>
<h2>What to change</h2><ul>{advice}</ul>
</body></html>
"""
