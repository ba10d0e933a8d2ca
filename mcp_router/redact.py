"""Secret redaction for everything delegation sends off the machine.

The detectors are Yelp's detect-secrets plugins (one per credential kind: AWS, Azure, GitHub, GitLab,
Slack, Stripe, Twilio, SendGrid, npm, PyPI, JWTs, private-key headers, ``user:pass@`` URLs, secret
keywords, and the base64 / hex entropy checks). Its scanning entry points are not used: they read
files, apply a baseline's settings and may verify a secret over the network. Each plugin's
``analyze_string`` is called line by line instead, and every value it finds is replaced in that line,
so the rest of the text stays readable.

``OWN_RULES`` covers what the library lacks (listed in the README): whole private-key blocks (the
library flags only the ``BEGIN`` line), Anthropic, OpenAI project, Google, GitHub fine-grained and
Hugging Face keys, ``Authorization`` header values, and secret-named assignments whose value is not
quoted or whose name the library's keyword list misses (``*_TOKEN``, ``*_CREDENTIALS``, ``.env``,
shell and PHP ``define`` syntax), and secret-named XML elements.

Imported only by delegation: detect-secrets takes a few hundred milliseconds to import.
"""

from __future__ import annotations

import base64
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from functools import cache
from itertools import accumulate
from typing import Any

PLACEHOLDER = "[REDACTED {}]"
_SECRET_NAME = (r"(?:token|secret|passw(?:or)?d|pwd|pass|api[_-]?key|apikey|access[_-]?key|auth[_-]?key"
                r"|auth[_-]?token|private[_-]?key|secret[_-]?key(?:[_-]?base)?|signing[_-]?key|encryption[_-]?key"
                r"|master[_-]?key|session[_-]?key|credentials?|client[_-]?secret|conn(?:ection)?[_-]?string|dsn"
                r"|app[_-]?key|license[_-]?key|tls[._-]key|client[_-]key[_-]data|dockerconfigjson|dockercfg)")
_SECRET_NAME_HINT = re.compile(_SECRET_NAME, re.IGNORECASE)
# "$NAME" and "${…}" are references, "$uperS3cret!" is a literal that begins with a dollar sign.
_REFERENCE = re.compile(r"^(?:\$(?:\{|\(|[A-Za-z_]\w*$)|\{\{|%\(|<|os\.environ|os\.getenv|process\.env|env\(|ENV\[|"
                        r"getenv|settings\.|config\.|[A-Za-z_][\w.]*\()")
# Letters from other scripts that look like Latin ones ("DB_PАSSWORD" with a Cyrillic А): names are matched on a
# copy with these folded to Latin, one character for one, so positions stay the same.
_LOOKALIKES = str.maketrans("АВЕЅІЈКМНОРСТУХаеіјорсуххѕԁԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧαικνορτυχ",
                            "ABESIJKMHOPCTYXaeijopcyxxsdqwABEZHIKMNOPTYXaiknoptux")
# The base64 of a PEM private key's first line, as it starts a Kubernetes Secret's tls.key or a client-key-data.
_PEM_HEADS = [base64.b64encode(head.encode())[:len(head) // 3 * 4].decode() for head in (
    "-----BEGIN PRIVATE KEY", "-----BEGIN RSA PRIVATE KEY", "-----BEGIN EC PRIVATE KEY", "-----BEGIN DSA PRIVATE KEY",
    "-----BEGIN OPENSSH PRIVATE KEY", "-----BEGIN ENCRYPTED PRIVATE KEY", "-----BEGIN PGP PRIVATE KEY BLOCK")]
_NOT_SECRET = {"true", "false", "null", "none", "nil", "yes", "no", "required", "optional", "changeme", "redacted"}

# Lines these rules can match are already marked by the secret-name hint: no whole-text pass of their own.
_NAME_HINTED = {"secret-named value", "secret-named XML element", "netrc password", "secret in prose"}
# Rules whose value spans lines: replaced over the whole text before the line-by-line pass (group "v", else all).
MULTILINE_RULES: dict[str, re.Pattern[str]] = {
    "private key": re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        re.S),
    "PuTTY private key": re.compile(r"(?m)^Private-Lines: *\d+\r?\n(?P<v>(?:[A-Za-z0-9+/=]+(?:\r?\n|\Z))+)"),
    # password: |  /  secret_key: >-   followed by the value on the more-indented lines below
    "secret-named YAML block": re.compile(
        r"(?im)^(?P<indent>[ \t-]*)[\w.\-]*?" + _SECRET_NAME + r"[\w.\-]*[\"']?\s*:[ \t]*[|>][+-]?\d*[ \t]*\r?\n"
        r"(?P<v>(?:(?P=indent)[ \t]+\S.*(?:\r?\n|\Z))+)"),
}

_YAML_BLOCK = re.compile(r":[ \t]*[|>]")

OWN_RULES: dict[str, re.Pattern[str]] = {
    "base64 private key": re.compile(r"(?:" + "|".join(_PEM_HEADS) + r")[A-Za-z0-9+/=]*"),
    "service token": re.compile(
        r"\b(?:hv[sbr]\.[A-Za-z0-9_\-]{24,}|do[opr]_v1_[a-f0-9]{64}|NRAK-[A-Z0-9]{27}|[0-9a-f]{36}NRAL"
        r"|shp(?:ss|at|ca|pa)_[a-fA-F0-9]{32}|access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32}|key-[0-9a-f]{32}"
        r"|xapp-\d-[A-Z0-9]+-\d+-[a-f0-9]{32,}|PMAK-[a-f0-9]{24}-[a-f0-9]{34}"
        r"|AAAA[A-Za-z0-9_\-]{7}:APA91b[A-Za-z0-9_\-]{100,})\b"),
    "Azure AD client secret": re.compile(r"(?<![\w~.\-])[\w\-]{3}\dQ~[\w~.\-]{31,34}(?![\w~\-])"),
    "Sentry DSN key": re.compile(r"\bhttps?://(?P<v>[0-9a-f]{32}(?::[0-9a-f]{32})?)@"),
    "AWS secret beside its key id": re.compile(
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}[ \t]*[,;\t][ \t]*(?P<v>[A-Za-z0-9+/]{40})\b"),
    "Docker registry auth": re.compile(r"\"auth\"\s*:\s*\"(?P<v>[A-Za-z0-9+/]{12,}={0,2})\""),
    "netrc password": re.compile(r"(?im)(?:\b(?:machine|login|default)\s+\S+\s+|^[ \t]*)password[ \t]+(?P<v>\S{4,})"),
    "mysql -p password": re.compile(r"\bmysql(?:dump|admin|import|show|check)?\b[^\n]*?\s-p(?P<v>[^\s'\"]{3,})"),
    "password hash": re.compile(r"(?<![\w$])\$(?:apr1|2[abxy]|[156]|y)\$[./A-Za-z0-9$]{8,}"),
    # "the staging db password is Tr0ub4dor3": a value with a digit or symbol and a letter, so prose stays
    "secret in prose": re.compile(
        r"(?i)\b(?:password|passphrase|passwd|secret|token)\s+(?:is|was|is now|will be)\s+"
        r"(?:\"(?P<dq>[^\"\n]{4,})\"|'(?P<sq>[^'\n]{4,})'"
        r"|(?P<bare>(?=[^\s;,]*[0-9!@#$%^&*])(?=[^\s;,]*[A-Za-z])[^\s;,'\"]{6,}))"),
    "Anthropic key": re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}"),
    "OpenAI key": re.compile(r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{32,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    "Google OAuth secret": re.compile(r"\bGOCSPX-[0-9A-Za-z_\-]{20,}"),
    "GitHub token": re.compile(r"\b(?:github_pat_[0-9A-Za-z_]{40,}|gh[pousr]_[0-9A-Za-z]{30,})"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "Authorization header": re.compile(r"(?i)\b(?:bearer|basic|token)\s+(?P<v>[A-Za-z0-9_\-.~+/=]{12,})"),
    # NAME = value / NAME: value / "name": "value" / export NAME=value / NAME => 'value' / ?token=value
    "secret-named value": re.compile(
        r"(?i)(?:^|(?<=[^A-Za-z0-9]))[\w.\-]*?" + _SECRET_NAME
        + r"(?:[\"']?\]?\s*(?::=|=>|[:=]|%3D)|[\"']\s*,|[ ]*\t)\s*"
        r"(?:\"(?P<dq>[^\"\n]{4,})\"|'(?P<sq>[^'\n]{4,})'|(?P<bare>[^\s\"',;&)}<]{6,}))"),
    "secret-named XML element": re.compile(
        r"(?i)<(?P<tag>[\w.\-:]*?" + _SECRET_NAME + r")>(?P<v>[^<\n]{4,})</(?P=tag)>"),
}


def warm_up() -> None:
    """Import detect-secrets and build its plugins ahead of the first delegation."""
    _scanners("content.txt")
    _keyword_hint()


def redact(text: str, filename: str = "content.txt") -> tuple[str, int]:
    """``text`` with every secret found replaced by a placeholder naming its kind, and how many were replaced.

    ``filename`` picks the library's keyword rules for the file's syntax (quotes optional in YAML, INI,
    TOML and config files, required in code).
    """
    found = 0
    for kind, pattern in MULTILINE_RULES.items():
        if kind == "secret-named YAML block" and not _YAML_BLOCK.search(text):  # skip the slow pass when it cannot hit
            continue

        def block(match: re.Match[str], kind: str = kind) -> str:
            nonlocal found
            found += 1
            if match.groupdict().get("v") is None:
                return PLACEHOLDER.format(kind)
            value_start = match.start("v") - match.start()
            return match.group()[:value_start] + PLACEHOLDER.format(kind) + "\n"

        text = pattern.sub(block, text)
    lines = text.splitlines(keepends=True)
    scanners = _scanners(filename)
    for number in sorted(_lines_to_scan(text, lines, scanners)):
        line = lines[number]
        spans = sorted(_spans(line, scanners), key=lambda span: (span[0], -span[1]))
        out, position = [], 0
        for start, end, kind in spans:
            if start < position:  # inside a span already replaced
                continue
            out.append(line[position:start])
            out.append(PLACEHOLDER.format(kind))
            position = end
            found += 1
        out.append(line[position:])
        lines[number] = "".join(out)
    return "".join(lines), found


Scanner = tuple[str, Callable[[str], Iterator[str]]]


def _lines_to_scan(text: str, lines: list[str], scanners: list[Scanner]) -> set[int]:
    """The lines that may hold a secret: each detector runs once over the whole text (line by line, every
    plugin on a 2 MB file takes tens of seconds) and the lines it points at are scanned again one by one."""
    starts = list(accumulate((len(line) for line in lines), initial=0))
    marked: set[int] = set()
    for kind, scan in scanners:
        if kind == "Secret Keyword":  # slow on a whole text: its lines are found by _keyword_hint
            continue
        for value in set(scan(text)):
            position = text.find(value)
            while position >= 0:
                marked.add(bisect_right(starts, position) - 1)
                position = text.find(value, position + 1)
    hints = [pattern for kind, pattern in OWN_RULES.items() if kind not in _NAME_HINTED]
    folded = text if text.isascii() else text.translate(_LOOKALIKES)
    for pattern in (*hints, _SECRET_NAME_HINT, _keyword_hint()):
        marked.update(bisect_right(starts, match.start()) - 1 for match in pattern.finditer(folded))
    return {number for number in marked if number < len(lines)}


@cache
def _keyword_hint() -> re.Pattern[str]:
    from detect_secrets.plugins.keyword import DENYLIST_REGEX

    return re.compile(DENYLIST_REGEX, re.IGNORECASE)


def _spans(line: str, scanners: list[Scanner]) -> Iterator[tuple[int, int, str]]:
    for kind, scan in scanners:
        for value in scan(line):
            if len(value) < 4 or value.lower() in _NOT_SECRET:
                continue
            start = line.find(value)
            while start >= 0:
                yield start, start + len(value), kind
                start = line.find(value, start + len(value))
    folded = line if line.isascii() else line.translate(_LOOKALIKES)
    for kind, pattern in OWN_RULES.items():
        for match in pattern.finditer(folded):
            group = next((g for g in ("v", "dq", "sq", "bare") if match.groupdict().get(g) is not None), 0)
            value = match.group(group)
            if kind.startswith("secret-named") and (_REFERENCE.match(value) or value.lower() in _NOT_SECRET
                                                  or value.isdigit()):
                continue
            yield match.start(group), match.end(group), kind


@cache
def _scanners(filename: str) -> list[Scanner]:
    """(kind, values in a line) for each detect-secrets plugin, the keyword plugin set up for ``filename``."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
    from detect_secrets.plugins.keyword import (
        QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
        REGEX_BY_FILETYPE,
        KeywordDetector,
    )
    from detect_secrets.util.filetype import determine_file_type

    def keyword(plugin: Any, rules: Any) -> Callable[[str], Iterator[str]]:
        return lambda line: plugin.analyze_string(line, rules)

    def entropy(plugin: Any) -> Callable[[str], Iterator[str]]:
        return lambda line: (value for value in plugin.analyze_string(line)
                             if plugin.calculate_shannon_entropy(value) > plugin.entropy_limit)

    scanners: list[Scanner] = []
    classes: dict[str, Any] = get_mapping_from_secret_type_to_class()
    for secret_type, plugin_class in sorted(classes.items()):
        if secret_type == "Public IP (ipv4)":  # an address is not a credential; redacting it hurts the answer
            continue
        plugin = plugin_class()
        if isinstance(plugin, KeywordDetector):
            rules = REGEX_BY_FILETYPE.get(determine_file_type(filename), QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
            scanners.append((secret_type, keyword(plugin, rules)))
        elif isinstance(plugin, HighEntropyStringsPlugin):
            scanners.append((secret_type, entropy(plugin)))
        else:
            scanners.append((secret_type, plugin.analyze_string))
    return scanners
