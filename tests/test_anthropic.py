from __future__ import annotations

import orjson
import pytest

from providers.anthropic import ANTHROPIC_BASE_URL, AnthropicProvider
from providers.base import (
    Call,
    ConfigError,
    ErrorKind,
    FinishReason,
    Image,
    ProviderError,
    Usage,
)

KEY = "sk-ant-secret-test-key"
IMAGE = Image(digest="d" * 64, mime="image/jpeg", b64="/9j/4AAQ", width=200, height=200)

HEADERS = {
    "request-id": "req_1",
    "anthropic-ratelimit-requests-limit": "1000",
    "anthropic-ratelimit-requests-remaining": "999",
    "anthropic-ratelimit-requests-reset": "2025-08-21T12:40:59Z",
    "anthropic-ratelimit-input-tokens-limit": "80000",
    "anthropic-ratelimit-input-tokens-remaining": "79000",
    "anthropic-ratelimit-output-tokens-limit": "16000",
    "anthropic-ratelimit-output-tokens-remaining": "16000",
    "anthropic-ratelimit-tokens-limit": "96000",
    "anthropic-ratelimit-tokens-remaining": "95000",
}


@pytest.fixture
def provider() -> AnthropicProvider:
    return AnthropicProvider(api_key=KEY)


def answer(**fields) -> bytes:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "A cuckoo."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 3150,
            "output_tokens": 17,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }
    body.update(fields)
    return orjson.dumps(body)


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "r",
        }
    )


def failure(provider, status, body, headers=None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.parse(status, headers or {}, body)
    return caught.value


def test_build_has_the_exact_wire_shape(provider):
    call = Call(
        model="claude-sonnet-4-5",
        parts=(IMAGE, "Which bird?"),
        temperature=0.2,
        max_tokens=200,
        seed=3,
        system="Be careful.",
    )
    request = provider.build(call)
    assert request.url == f"{ANTHROPIC_BASE_URL}/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert orjson.loads(request.body) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 200,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/jpeg",
                            "data": "/9j/4AAQ",
                        },
                    },
                    {"type": "text", "text": "Which bird?"},
                ],
            }
        ],
        "system": "Be careful.",
        "temperature": 0.2,
    }


def test_only_one_of_temperature_and_top_p_is_sent(provider):
    def sampling(**options) -> dict:
        body = orjson.loads(provider.build(Call("m", ("x",), **options)).body)
        return {k: body[k] for k in ("temperature", "top_p") if k in body}

    assert sampling() == {"temperature": 0.0}
    assert sampling(top_p=0.9) == {"top_p": 0.9}
    assert sampling(temperature=0.7, top_p=0.9) == {"temperature": 0.7}


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider()
    emulator = AnthropicProvider("http://127.0.0.1:8000", api_key="")
    assert "x-api-key" not in emulator.build(Call("m", ("x",))).headers
    assert emulator.identity == "anthropic:http://127.0.0.1:8000"


def test_the_key_never_shows(provider):
    request = provider.build(Call("m", ("x",)))
    assert KEY not in repr(request)
    assert KEY not in repr(provider)
    error = failure(provider, 401, error_body("authentication_error", f"bad {KEY}"))
    assert KEY not in str(error)
    assert KEY not in repr(error)


def test_parse_success_with_rate_limit_headers(provider):
    reply = provider.parse(200, HEADERS, answer())
    assert reply.texts == ("A cuckoo.",)
    assert reply.finish is FinishReason.COMPLETE
    assert reply.usage == Usage(input_tokens=3150, output_tokens=17)
    info = reply.rate_limit
    assert info is not None
    assert info.limit_requests == 1000
    assert info.remaining_input_tokens == 79000
    assert info.limit_output_tokens == 16000
    assert info.limit_tokens == 96000


def test_usage_adds_the_cached_parts_to_the_input(provider):
    usage = {
        "input_tokens": 100,
        "output_tokens": 5,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 300,
    }
    reply = provider.parse(200, {}, answer(usage=usage))
    assert reply.usage == Usage(420, 5, 0, 300)


def test_text_blocks_are_joined_and_others_skipped(provider):
    content = [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "Yellow-"},
        {"type": "text", "text": "billed."},
    ]
    assert provider.parse(200, {}, answer(content=content)).texts == ("Yellow-billed.",)


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("stop_sequence", FinishReason.COMPLETE),
        ("max_tokens", FinishReason.TRUNCATED),
        ("model_context_window_exceeded", FinishReason.TRUNCATED),
        ("pause_turn", FinishReason.OTHER),
        ("something_new", FinishReason.OTHER),
    ],
)
def test_stop_reasons(provider, reason, finish):
    assert provider.parse(200, {}, answer(stop_reason=reason)).finish is finish


def test_refusal_is_final_and_keeps_usage(provider):
    error = failure(provider, 200, answer(stop_reason="refusal", content=[]), HEADERS)
    assert error.kind is ErrorKind.FILTERED
    assert not error.retryable
    assert error.usage == Usage(input_tokens=3150, output_tokens=17)
    assert error.rate_limit is not None


def test_truncated_with_no_text_is_a_request_failure(provider):
    error = failure(provider, 200, answer(stop_reason="max_tokens", content=[]))
    assert error.kind is ErrorKind.INVALID_REQUEST
    assert error.usage is not None


@pytest.mark.parametrize("body", [b"<html>", b'"text"', b'{"content": null}'])
def test_unreadable_answers_are_malformed_and_retryable(provider, body):
    error = failure(provider, 200, body)
    assert error.kind is ErrorKind.MALFORMED
    assert error.retryable


def test_rate_limited_is_retryable_after_retry_after(provider):
    headers = {**HEADERS, "retry-after": "12"}
    body = error_body("rate_limit_error", "Number of request tokens has exceeded")
    error = failure(provider, 429, body, headers)
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retryable
    assert error.retry_after_s == 12.0
    assert error.message == "Number of request tokens has exceeded"
    assert error.rate_limit is not None and error.rate_limit.limit_input_tokens == 80000


def test_overloaded_529_is_retryable(provider):
    error = failure(
        provider,
        529,
        error_body("overloaded_error", "Overloaded"),
        {"retry-after-ms": "2500"},
    )
    assert error.kind is ErrorKind.OVERLOADED
    assert error.retryable
    assert error.retry_after_s == 2.5


@pytest.mark.parametrize(
    ("status", "kind_name", "kind", "retryable"),
    [
        (400, "invalid_request_error", ErrorKind.INVALID_REQUEST, False),
        (401, "authentication_error", ErrorKind.AUTHENTICATION, False),
        (402, "billing_error", ErrorKind.QUOTA, False),
        (403, "permission_error", ErrorKind.AUTHENTICATION, False),
        (404, "not_found_error", ErrorKind.NOT_FOUND, False),
        (413, "request_too_large", ErrorKind.TOO_LARGE, False),
        (500, "api_error", ErrorKind.SERVER, True),
        (504, "timeout_error", ErrorKind.TIMEOUT, True),
        (503, "brand_new_error", ErrorKind.OVERLOADED, True),
        (418, "brand_new_error", ErrorKind.INVALID_REQUEST, False),
    ],
)
def test_error_classes(provider, status, kind_name, kind, retryable):
    error = failure(provider, status, error_body(kind_name, "m"))
    assert (error.kind, error.retryable, error.status) == (kind, retryable, status)


def test_x_should_retry_overrides(provider):
    body = error_body("invalid_request_error", "m")
    assert failure(provider, 400, body, {"X-Should-Retry": "true"}).retryable
    body = error_body("api_error", "m")
    assert not failure(provider, 500, body, {"x-should-retry": "false"}).retryable


def test_non_json_error_body_is_classified_by_status(provider):
    error = failure(provider, 502, b"upstream connect error")
    assert error.kind is ErrorKind.SERVER
    assert error.message == "upstream connect error"


def test_estimate_counts_text_and_images(provider):
    call = Call("claude-haiku-4-5", (IMAGE, "x" * 40))
    assert provider.estimate_input_tokens(call) == 4 + 54 + 10
