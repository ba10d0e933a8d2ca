"""The stand-in Messages API is only useful if the real SDK and Claude Code accept it: check it with the SDK."""

from __future__ import annotations

import json
import urllib.request

import anthropic
import pytest

from .standin_api import Reply, StandinAPI


def test_sdk_non_streaming_and_streaming_with_cache_usage() -> None:
    with StandinAPI() as api:
        client = anthropic.Anthropic(base_url=api.url, api_key="test", max_retries=0)
        system = [{"type": "text", "text": "stable prompt " * 50, "cache_control": {"type": "ephemeral"}}]
        first = client.messages.create(model="claude-haiku-5-5", max_tokens=50, system=system,
                                       messages=[{"role": "user", "content": "hello"}])
        assert first.content[0].text == "OK: hello"
        assert first.usage.cache_creation_input_tokens > 0 and first.usage.cache_read_input_tokens == 0
        with client.messages.stream(model="claude-haiku-5-5", max_tokens=50, system=system,
                                    messages=[{"role": "user", "content": "again"}]) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text == "OK: again"
        assert final.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
        assert final.usage.output_tokens > 0


def test_tool_use_streams_its_input_and_beta_query_is_accepted() -> None:
    with StandinAPI(lambda request: Reply(tool_uses=[{"name": "Read", "input": {"file_path": "/x"}}])) as api:
        client = anthropic.Anthropic(base_url=api.url, api_key="test", max_retries=0)
        with client.messages.stream(model="claude-opus-5-5", max_tokens=50, extra_query={"beta": "true"},
                                    messages=[{"role": "user", "content": "read it"}]) as stream:  # as Claude Code
            message = stream.get_final_message()
        assert message.stop_reason == "tool_use"
        assert message.content[0].type == "tool_use" and message.content[0].input == {"file_path": "/x"}
        assert api.paths[-1] == "/v1/messages?beta=true"


def test_count_tokens_and_api_shaped_errors() -> None:
    with StandinAPI() as api:
        client = anthropic.Anthropic(base_url=api.url, api_key="test", max_retries=0)
        counted = client.messages.count_tokens(model="claude-haiku-5-5",
                                               messages=[{"role": "user", "content": "x" * 400}])
        assert counted.input_tokens >= 100
        for status, error in [(429, anthropic.RateLimitError), (500, anthropic.InternalServerError),
                              (529, anthropic.APIStatusError)]:
            api.faults = [status]
            with pytest.raises(error) as caught:
                client.messages.create(model="claude-haiku-5-5", max_tokens=5,
                                       messages=[{"role": "user", "content": "hi"}])
            assert caught.value.status_code == status
            assert caught.value.body["error"]["message"] == f"scripted {status}"
        request = urllib.request.Request(f"{api.url}/v1/messages", data=b"{", method="POST")
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(request, timeout=10)
        assert bad.value.code == 400 and json.loads(bad.value.read())["type"] == "error"
