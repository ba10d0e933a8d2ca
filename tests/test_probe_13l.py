"""Probe 13l: the lines between a long request's start and end that read as the user's own words. An ask between
two pastes is now read (probe 13j's case), but so are unfenced lines of someone else's prose, and only the first
1,000 characters of them."""

from __future__ import annotations

import pytest

from mcp_router.routing import Router


def log(size: int) -> str:
    lines = [f"2026-11-30T12:{i % 60:02d}:{i * 7 % 60:02d}Z INFO [worker-{i % 8}] billing.sync batch={1000 + i} "
             f"rows={i * 13 % 977} latency_ms={i * 31 % 400} status=ok" for i in range(1, size // 80 + 2)]
    return "\n".join(lines)[:size]


CHEAP_ASKS = "\n".join([
    "Can you summarise the attached notes for the team channel please",
    "Also reformat the table of owners into markdown when you get a chance",
    "Sort the list of action items alphabetically and translate the title",
    "List every email address that appears in the thread below for me",
    "Fix the typos in the agenda and turn the bullets into a numbered list"])
MEETING_NOTES = "\n".join(f"Thanks everyone for joining the weekly sync on {day}, notes from the call follow below"
                          for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
                                      "the first", "the second", "the third", "the fourth", "the fifth"))


def test_an_opus_ask_between_two_pastes_goes_to_opus(router: Router) -> None:
    ask = "Rewrite verify() in auth/tokens.py so that a token signed with alg=none can never be accepted."
    assert router.route(f"{log(3000)}\n{ask}\n{log(3000)}").tier == "opus"


@pytest.mark.xfail(strict=True, reason="the unfenced cheap asks in the middle are read as the user's own words and "
                   "outweigh the Opus ask at the start (Haiku, sure); without the middle reading it was Opus, unsure")
def test_an_opus_ask_before_a_paste_of_cheap_asks_goes_to_opus(router: Router) -> None:
    task = (f"Why do our payment webhooks double-fire only on Mondays, across the gateway and the ledger service? "
            f"Context below.\n\n{log(3000)}\n\n{CHEAP_ASKS}\n\n{log(2000)}")
    assert router.route(task).tier == "opus"


@pytest.mark.xfail(strict=True, reason="the middle reading takes the first 1,000 characters of own-words lines; an "
                   "ask after more of them is read only as words among the paste's")
def test_an_opus_ask_after_a_thousand_characters_of_prose_between_pastes_goes_to_opus(router: Router) -> None:
    ask = ("What I need from you: plan the production migration that moves the orders table to a new partitioned "
           "schema with zero downtime, 400M rows.")
    assert router.route(f"{log(2000)}\n\n{MEETING_NOTES}\n{ask}\n\n{log(2000)}\n\nthanks").tier == "opus"
