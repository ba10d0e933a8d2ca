from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from array import array
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_router import feedback
from mcp_router.config import TIERS, Config
from mcp_router.pricing import Catalog
from mcp_router.routing import Model, Router, _own_words, estimated_tokens, features, load_policy
from mcp_router.store import connect
from mcp_router.transcripts import blank

CATALOG = Catalog.load()
ROUTER = Router.load(CATALOG, Config.load())
POLICY = load_policy()
CLASSES = list(POLICY["categories"])


def _model(bias: dict[str, float], tier_weight: float = 0.0, calibration: list[list[float]] | None = None) -> Model:
    """A model whose reading is its biases alone (every weight is 128, i.e. zero); by default the tier model, whose
    biases are equal, has no share, and the stated confidence is the probability (no calibration map)."""
    meta = {"classes": CLASSES, "class_tiers": [POLICY["categories"][name] for name in CLASSES], "bits": 4,
            "scale": 0.01, "temperature": 1.0, "tier_temperature": 1.0, "tier_weight": tier_weight,
            "calibration": calibration or [],
            "bias": [bias.get(name, -50.0) for name in CLASSES] + [bias.get(tier, 0.0) for tier in TIERS]}
    return Model(meta, array("H", [128] * ((len(CLASSES) + len(TIERS)) << 4)).tobytes())


@pytest.mark.parametrize(
    ("task", "tier"),
    [
        ("rename the variable arch in config.py", "haiku"),  # decoy: "arch"
        ("convert data.csv to json", "haiku"),
        ("extract all the urls from notes.md", "haiku"),
        ("write a commit message for this diff", "haiku"),
        ("summarize the production logs", "haiku"),  # a summary of production logs is still a summary
        ("add a --json flag to the export command", "sonnet"),
        ("write tests for the csv parser", "sonnet"),
        ("refactor report.py into smaller functions", "sonnet"),
        ("explain how the jwt validation works", "sonnet"),  # explaining auth code is not writing it
        ("design the sharding strategy for the events table, trade-offs please", "opus"),
        ("implement the oauth2 PKCE flow for the mobile login", "opus"),  # writing auth code is
        ("rename `amount` to `amount_cents` in the prod payments table; 6 services read it", "opus"),
        ("reformat utils.py, use opus", "opus"),  # an explicit ask for the best model: a rule
    ],
)
def test_route_tiers(task: str, tier: str) -> None:
    decision = ROUTER.route(task)
    assert decision.tier == tier, decision.reason
    assert decision.model == CATALOG.resolve(tier)
    assert decision.reason and 0 <= decision.confidence <= 1


@pytest.mark.parametrize("quoted", [
    "> Bob: we should use opus for this\n> Ann: agreed",
    'the PM wrote "ask opus, it needs the best model"',
    "```\n# TODO: use opus\n```",
    "«use opus» dit le ticket",
    "my colleague wrote 'we should use opus for everything', then left",  # probe 13d: single quotes,
    "the bot's help says ‘use opus for hard tasks’",  # curly single quotes,
    "the help text says `use opus for hard tasks`",  # inline code
])
def test_the_best_model_rule_reads_the_users_words_not_what_they_quote(quoted: str) -> None:
    model = _model({"reformat": 5.0})  # a sure reformat, whatever the text
    router = Router(CATALOG, POLICY, model=model)
    assert router.route(f"reformat this:\n{quoted}").tier == "haiku"
    raised = router.route(f"reformat this, use opus:\n{quoted}")
    assert (raised.tier, raised.confidence) == ("opus", 1.0) and "'use opus'" in raised.reason
    apostrophes = router.route(f"don't reformat it by hand, the users' list is long: use opus:\n{quoted}")
    assert apostrophes.tier == "opus" and "'use opus'" in apostrophes.reason


@pytest.mark.parametrize(("task", "asked"), [
    ("route this to opus: rename x to y", "route this to opus"),  # probe 13d: was Haiku
    ("send it over to Claude Opus, then reformat the list", "send it over to Claude Opus"),
    ("I don't care what it costs. Reformat this, use opus", "use opus"),  # a negation elsewhere
    # probe 13e: asks the rule missed, and negations it over-applied
    ("Opus: reformat these lines", "Opus:"), ("opus please, reformat these lines", "opus please"),
    ("this needs opus: reformat it", "needs opus"), ("have Opus do it: reformat the list", "have Opus"),
    ("use claude-opus-4-5 for this reformat", "use claude-opus"), ("use the top model: reformat it", "the top model"),
    ("don't forget to use opus: reformat it", "use opus"), ("it won't hurt to use opus: reformat it", "use opus"),
    ("don't hesitate to use the best model: reformat it", "the best model"),
    ("Используй лучшую модель: переформатируй это", "лучшую модел"), ("Usa Opus: reformatea esto", "Usa Opus"),
    ("用最好的模型：重新格式化", "最好的模型"), ("最高のモデルを使って整形して", "最高のモデル"),
    ("utilise le meilleur modèle : reformate ça", "meilleur modèle"), ("استخدم أفضل نموذج: أعد التنسيق", "أفضل نموذج"),
])
def test_the_best_model_rule_hears_an_ask_to_route_or_send_to_opus(task: str, asked: str) -> None:
    router = Router(CATALOG, POLICY, model=_model({"reformat": 5.0}))
    decision = router.route(task)
    assert (decision.tier, decision.confidence) == ("opus", 1.0) and f"({asked!r})" in decision.reason


@pytest.mark.parametrize("task", [
    "I want you to use opus: reformat it", "It is urgent, use opus: reformat it",  # probe 13g: "nt" negated them
    "Reformat x; I'd like Opus for it.", "Reformat x (opus).", "/model opus reformat x", "交给 Opus 处理：重新格式化",
])
def test_an_ask_is_not_refused_by_a_word_that_merely_ends_in_nt(task: str) -> None:
    decision = Router(CATALOG, POLICY, model=_model({"reformat": 5.0})).route(task)
    assert (decision.tier, decision.confidence) == ("opus", 1.0), decision.reason


@pytest.mark.parametrize("task", [
    "Sort these imports. Don't bother with the best model.", "把这些 import 排序。不用 Opus。",
    "Отсортируй импорты. Не используй Opus.",
    "don't use opus, just reformat this", "do not route this to opus: reformat the list",
    "no need for the best model here, reformat it", "you don't have to use opus for this reformat",
    "never send it to opus, reformat it", "reformat it without the best model",
    "switch the codec to opus in encoder.c",  # the audio codec: nobody asked for a model
    "there's no reason to use opus: reformat it", "never, ever use opus: reformat it",
    "I'm not asking you to use opus, reformat it",
])
def test_the_best_model_rule_is_not_raised_by_an_ask_not_to(task: str) -> None:
    assert Router(CATALOG, POLICY, model=_model({"reformat": 5.0})).route(task).tier == "haiku"


def test_an_absurd_context_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="context_tokens must be from 0 to"):  # probe 13g: 10**400 overflowed a float
        ROUTER.route("summarize this log", 10**400)
    with pytest.raises(ValueError, match=r"^context_tokens must be from 0 to 1,000,000,000,000, got -5$"):
        ROUTER.route("summarize this log", -5)  # probe 13m: it said "a larger count is a mistake"


def test_a_task_that_is_itself_a_large_input_counts_toward_the_size_rules() -> None:
    # probe 13d: a 26 MB task went to Haiku; its own tokens now join the context it is given
    router = Router(CATALOG, POLICY, model=_model({"summarize": 5.0}))
    assert router.route("summarize this log " + "x" * 1000, context_tokens=199_000).tier == "haiku"
    large = router.route("summarize this log " + "x" * 4000, context_tokens=199_000)
    assert large.tier == "sonnet" and "a large input (200,004 tokens)" in large.reason
    assert router.route("summarize " + "x" * 26_000_000).reason.endswith("split the input.")
    # Chinese and Japanese are about a token a character, not four (probe 13e: a 312k-character log went to Haiku)
    assert estimated_tokens("ログ" * 100_000) == 200_000 and estimated_tokens("log " * 100_000) == 100_000
    assert router.route("このログを要約して\n" + "エラー" * 70_000).tier == "sonnet"


def test_unsure_names_two_tiers_and_picks_the_higher() -> None:
    router = Router(CATALOG, POLICY, model=_model({"summarize": 0.3, "research": 0.0}))  # 57% haiku, 43% opus
    decision = router.route("anything")
    assert decision.uncertain and decision.candidates == ["haiku", "opus"]
    assert (decision.tier, decision.category) == ("opus", "research")
    assert decision.confidence == 0.43 and "unsure between haiku and opus" in decision.reason
    sure = Router(CATALOG, POLICY, model=_model({"summarize": 5.0})).route("anything")
    assert not sure.uncertain and sure.candidates == ["haiku"] and sure.tier == "haiku" and sure.confidence >= 0.8


def test_the_stated_confidence_is_the_calibration_map_of_the_decided_tiers_probability() -> None:
    bias = {"summarize": 0.3, "research": 0.0}  # 57% haiku, 43% opus: unsure, opus
    mapped = Router(CATALOG, POLICY, model=_model(bias, calibration=[[0.0, 0.0], [0.4, 0.5], [0.6, 0.7], [1.0, 1.0]]))
    decision = mapped.route("anything")
    assert decision.uncertain and decision.tier == "opus"
    assert decision.confidence == 0.53 and "(53% opus)" in decision.reason  # 0.43 read off the map: 0.5 + 0.03
    assert Router(CATALOG, POLICY, model=_model({"summarize": 5.0}, calibration=[[0.0, 0.0], [0.9, 0.8], [1.0, 0.9]])
                  ).route("anything").confidence <= 0.9


@given(st.floats(0, 1))
def test_the_shipped_calibration_map_is_increasing_and_a_probability(probability: float) -> None:
    model = ROUTER.model
    low, high = model.calibrated(probability), model.calibrated(min(probability + 0.01, 1.0))
    assert 0.0 <= low <= high <= 1.0


@given(st.dictionaries(st.sampled_from(CLASSES), st.floats(-8, 8), min_size=1))
def test_never_haiku_when_unsure(bias: dict[str, float]) -> None:
    decision = Router(CATALOG, POLICY, model=_model(bias)).route("anything")
    if decision.uncertain:
        assert decision.tier != "haiku" and len(decision.candidates) == 2
        assert decision.tier == decision.candidates[-1]
    else:
        assert decision.candidates == [decision.tier]
        assert decision.confidence >= POLICY["uncertain_below"] - 0.005


def test_a_tier_is_the_sum_of_its_categories() -> None:
    # No single category reaches 40%, but the three Opus ones together are 60%: Opus, sure of the tier.
    bias = {"summarize": math.log(0.2), "extract": math.log(0.2), "security": math.log(0.2),
            "architecture": math.log(0.2), "research": math.log(0.2)}
    router = Router(CATALOG, {**POLICY, "uncertain_below": 0.55}, model=_model(bias))
    decision = router.route("anything")
    assert (decision.tier, decision.uncertain, decision.confidence) == ("opus", False, 0.6)


def test_the_tier_model_is_averaged_in_and_follows_a_category_override() -> None:
    # Categories: summarize 50%, research 50%; the tier model: Haiku 90%. Averaged: Haiku 70%, Opus 27.5%.
    bias = {"summarize": 0.0, "research": 0.0, "haiku": math.log(0.9), "sonnet": math.log(0.05),
            "opus": math.log(0.05)}
    policy = {**POLICY, "uncertain_below": 0.6}
    decision = Router(CATALOG, policy, model=_model(bias, tier_weight=0.5)).route("anything")
    assert (decision.tier, decision.category, decision.uncertain, decision.confidence) == ("haiku", "summarize",
                                                                                             False, 0.7)
    # The tier model's share of Haiku went to summarize (Haiku's only likely category): an override moves all of it
    # (70%), beside the tier model's own Sonnet share (2.5%).
    overridden = Router(CATALOG, policy, {"summarize": "sonnet"}, model=_model(bias, tier_weight=0.5)).route("anything")
    assert (overridden.tier, overridden.category, overridden.confidence) == ("sonnet", "summarize", 0.73)


def test_the_decision_says_uncertain_and_candidates_everywhere(db_path: Path) -> None:
    decision = ROUTER.route("summarize this build log")
    assert decision.to_dict()["uncertain"] is False and decision.to_dict()["candidates"] == ["haiku"]
    done = subprocess.run([sys.executable, "-m", "mcp_router", "route", "zorble frobnicator", "--json"],
                          capture_output=True, text=True, check=True, env={**os.environ, "MCP_ROUTER_DB": str(db_path)})
    routed = json.loads(done.stdout)
    assert routed["uncertain"] is True and len(routed["candidates"]) == 2 and routed["tier"] != "haiku"


def test_context_beyond_the_window_moves_to_a_tier_that_fits() -> None:
    catalog = Catalog.load({"models": {"claude-haiku-5-5": {"context_window": 100_000}}})
    router = Router.load(catalog, Config.load())
    assert router.route("summarize this log", context_tokens=90_000).tier == "haiku"
    decision = router.route("summarize this log", context_tokens=150_000)
    assert decision.tier == "sonnet" and "exceed haiku's window" in decision.reason
    assert decision.candidates == ["sonnet"] and not decision.uncertain


def test_a_mechanical_task_over_a_large_context_needs_sonnet() -> None:
    assert ROUTER.route("summarize this log", context_tokens=199_995).tier == "haiku"  # the task's 4 tokens join it
    decision = ROUTER.route("summarize this log", context_tokens=199_996)
    assert decision.tier == "sonnet" and "a large input (200,000 tokens)" in decision.reason
    assert ROUTER.route("refactor report.py", context_tokens=200_000).tier == "sonnet"  # not raised twice
    assert ROUTER.route("summarize this log", context_tokens=2_000_000).reason.endswith("split the input.")


def test_config_and_database_overrides(db_path: Path) -> None:
    config = Config(routing={"summarize": "sonnet"})
    assert Router.load(CATALOG, config).route("summarize this diff").tier == "sonnet"
    conn = connect(db_path)
    conn.execute("INSERT INTO category_overrides (category, tier, source) VALUES ('reformat', 'opus', 'user')")
    assert Router.load(CATALOG, Config.load(), conn).route("convert data.csv to json").tier == "opus"
    with pytest.raises(ValueError, match="routing.summaries: unknown category"):
        Router.load(CATALOG, Config(routing={"summaries": "opus"}))


def test_a_user_sets_the_bar_below_which_the_router_is_unsure() -> None:
    task = "make this tracklist into proper title case and check the spellings of the artists"
    always_sure, never_sure = (Router.load(CATALOG, Config(uncertain_below=bar)) for bar in (0.0, 1.0))
    assert not always_sure.route(task).uncertain and never_sure.route(task).uncertain
    assert Router.load(CATALOG, Config()).uncertain_below == POLICY["uncertain_below"]


def test_the_same_task_gets_the_same_decision_in_every_process() -> None:
    task = "whats this regex doing: ^(?=.*\\d)(?=.*[a-z]).{8,}$ — it's in auth/validators.py"
    answers = {subprocess.run([sys.executable, "-m", "mcp_router", "route", task, "--json"], capture_output=True,
                              text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "2", "3")}
    assert len(answers) == 1, answers


def test_the_model_is_read_only_when_a_request_is_routed() -> None:
    router = Router.load(CATALOG, Config.load())
    assert router._model is None
    router.route("convert data.csv to json")
    assert router._model is not None and len(router._model.classes) == len(POLICY["categories"])


def test_features_are_stable_and_bounded() -> None:
    assert features("Fix the bug", 16) == features("Fix the bug", 16)  # CRC-32: no per-process hash seed
    assert all(0 <= bucket < 16 for bucket in features("a much longer request " * 500, 4))
    long_log = "ERROR worker crashed\n" * 5000 + "why does this keep happening?"
    assert len(features(long_log, 16)) < 4000  # a pasted log: its start and end, and a repeated line once


LOG = "".join(f"2026-11-30T12:{i % 60:02d}:03Z INFO worker-{i % 7} job={i:05d} took {i % 97}ms\n" for i in range(60))
TRACE = '  File "app/jobs.py", line 88, in run\n    result = handler(payload)\nKeyError: \'tenant\'\n'
CODE = "```python\ndef refresh(token):\n    claims = decode(token, verify=False)\n    return claims\n```\n"


def test_the_own_words_between_two_pastes_are_read_and_the_pastes_lines_are_not() -> None:
    ask = "Rewrite the refresh so it verifies the signature before trusting the claims."
    middle = f"{TRACE * 20}{CODE}{ask}\n{LOG}{ask}\nNote: see above\n"
    assert _own_words(middle.lower()) == ask.lower() + " note: see above"
    assert _own_words(("an own line of prose that goes on\n" * 200).lower()) == "an own line of prose that goes on"
    assert len(_own_words("".join(f"Line {n} of a long letter, written by hand.\n" for n in range(999)))) == 1000


def test_an_ask_between_two_pastes_reaches_the_character_ngrams() -> None:
    from zlib import crc32

    ask = "rewrite the refresh so it verifies the signature before trusting the claims."
    ngrams = {crc32(f"c{ask[i:i + 5]}".encode()) & (2**20 - 1) for i in range(len(ask) - 4)}
    with_ask, without = (set(features(f"{LOG * 2}{middle}{LOG * 2}", 20)) for middle in (f"{ask}\n", "\n"))
    assert ngrams <= with_ask and not ngrams <= without


def _features_as_defined(text: str, bits: int) -> list[int]:
    """``features`` written as its docstring reads, each feature's string made and hashed."""
    from zlib import crc32

    from mcp_router.routing import _STRUCTURE, _WORD, HEAD_CHARS, TAIL_CHARS, _own_words

    lower = text.lower()
    words = _WORD.findall(lower)
    grams = [f"w{word}" for word in words] + [f"b{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    flat = " ".join(lower.split())
    if len(flat) > HEAD_CHARS + TAIL_CHARS:
        flat = f"{flat[:HEAD_CHARS]} … {_own_words(lower[HEAD_CHARS:-TAIL_CHARS])} … {flat[-TAIL_CHARS:]}"
    flat = f" {flat} "
    grams += [f"c{flat[i:i + n]}" for n in (3, 4, 5) for i in range(len(flat) - n + 1)]
    grams += [f"c{flat[i:i + 2]}" for i in range(len(flat) - 1) if not flat[i:i + 2].isascii()]
    grams += [f"s{name}" for name, pattern in _STRUCTURE if pattern.search(text)]
    grams.append(f"slength{len(text).bit_length()}")
    return list(dict.fromkeys(crc32(gram.encode("utf-8", "surrogatepass")) & ((1 << bits) - 1) for gram in grams))


@given(st.one_of(st.text(max_size=300), st.text(alphabet="abc é日本\ud800\n`", max_size=50),
                 st.sampled_from(["Fix the bug", "x" * 3000 + " why?", "```\nTraceback (most recent call last)"])))
def test_features_are_the_hashes_of_the_features_strings_and_remembered_rows_change_nothing(text: str) -> None:
    assert features(text, 16) == _features_as_defined(text, 16)
    if not blank(text):
        remembering = Router.load(CATALOG, Config.load())
        remembering.model.remember_rows()
        buckets = features(text, ROUTER.model.bits)
        assert remembering.model.weight_sums(buckets) == ROUTER.model.weight_sums(buckets)
        assert remembering.route(text) == ROUTER.route(text) and remembering.route(text) == ROUTER.route(text)


@given(st.text(max_size=300), st.integers(0, 3_000_000))
def test_route_returns_a_tier_or_says_the_task_is_empty(task: str, context_tokens: int) -> None:
    if blank(task):  # test_probe_13d and test_transcripts say what blank is
        with pytest.raises(ValueError, match="the task is empty"):
            ROUTER.route(task, context_tokens)
        return
    decision = ROUTER.route(task, context_tokens)
    assert decision.tier in ("haiku", "sonnet", "opus") and decision.candidates


def _delegation(conn, n: int, category: str = "summarize") -> str:
    conn.execute("INSERT INTO delegations (id, ts, category, model, outcome)"
                 " VALUES (?, ?, ?, 'claude-haiku-5-5', 'ok')", (f"d{n}", float(n), category))
    return f"d{n}"


def test_bad_rate_above_5_percent_over_20_ratings_promotes_and_reset_reverses(db_path: Path) -> None:
    conn = connect(db_path)
    results = [feedback.record_feedback(conn, _delegation(conn, n), "bad" if n in (3, 7) else "good")
               for n in range(19)]
    assert all(r["promoted_to"] is None for r in results)  # 19 rated: not yet
    result = feedback.record_feedback(conn, _delegation(conn, 19), "good")
    assert result["promoted_to"] == "sonnet"  # 2 bad of 20 = 10%
    assert Router.load(CATALOG, Config.load(), conn).route("summarize this diff").tier == "sonnet"
    quality = {q["category"]: q for q in feedback.category_quality(conn)}
    assert quality["summarize"]["rated"] == 20 and quality["summarize"]["override_tier"] == "sonnet"
    assert feedback.reset(conn, "summarize")
    assert Router.load(CATALOG, Config.load(), conn).route("summarize this diff").tier == "haiku"
    assert feedback.record_feedback(conn, _delegation(conn, 20), "bad")["promoted_to"] is None  # fresh record


def test_one_bad_in_20_does_not_promote(db_path: Path) -> None:
    conn = connect(db_path)
    for n in range(20):
        result = feedback.record_feedback(conn, _delegation(conn, n), "bad" if n == 0 else "good")
    assert result["promoted_to"] is None  # exactly 5% is not above 5%


def test_feedback_on_an_unknown_delegation_is_a_clear_error(db_path: Path) -> None:
    with pytest.raises(ValueError, match="no delegation with id 'nope'"):
        feedback.record_feedback(connect(db_path), "nope", "good")
    with pytest.raises(ValueError, match="rating must be 'good' or 'bad'"):
        feedback.record_feedback(connect(db_path), "nope", "meh")


def test_the_policy_json_the_hook_reads_is_routing_toml() -> None:
    """routing.toml is the policy; its JSON twin spares the hook tomllib. Regenerate after editing the TOML:
    python -c "import json,tomllib;p='mcp_router/data/routing';json.dump(tomllib.load(open(p+'.toml','rb')),
    open(p+'_policy.json','w'),indent=1)" """
    import tomllib

    from mcp_router.routing import POLICY as TOML

    with open(TOML, "rb") as source:
        assert load_policy() == tomllib.load(source), "routing_policy.json is stale: regenerate it (see above)"
