from __future__ import annotations

import orjson
import pytest

from providers.base import Call, ConfigError, ErrorKind, FinishReason, Image, Usage
from providers.gemini import GEMINI_BASE_URL, GeminiProvider

KEY = "AIza-secret-test-key"
IMAGE = Image(
    digest="d" * 64, mime="image/png", b64="iVBORw0KGgo=", width=1024, height=1024
)


@pytest.fixture
def provider() -> GeminiProvider:
    return GeminiProvider(api_key=KEY)


def answer(**fields) -> bytes:
    body = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "A cuckoo."}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 544,
            "candidatesTokenCount": 13,
            "totalTokenCount": 557,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 28},
                {"modality": "IMAGE", "tokenCount": 516},
            ],
        },
        "modelVersion": "gemini-2.0-flash",
        "responseId": "abc",
        "someNewField": {"ignored": True},
    }
    body.update(fields)
    return orjson.dumps(body)


def error_body(code: int, status: str, message: str, details=()) -> bytes:
    error = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return orjson.dumps({"error": error})


def test_build_has_the_exact_wire_shape(provider):
    call = Call(
        model="gemini-2.5-flash",
        parts=(IMAGE, "Which bird?"),
        temperature=0.2,
        max_tokens=200,
        top_p=0.95,
        seed=42,
        system="Be careful.",
    )
    request = provider.build(call)
    assert request.url == (
        f"{GEMINI_BASE_URL}/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert request.headers["x-goog-api-key"] == KEY
    assert request.headers["Content-Type"] == "application/json"
    assert orjson.loads(request.body) == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                    {"text": "Which bird?"},
                ],
            }
        ],
        "generationConfig": {
            "temperature": 0.2,
            "maxOutputTokens": 200,
            "candidateCount": 1,
            "topP": 0.95,
            "seed": 42,
        },
        "systemInstruction": {"parts": [{"text": "Be careful."}]},
    }


def test_build_leaves_out_unset_options():
    provider = GeminiProvider("http://127.0.0.1:9999/", api_key="")
    request = provider.build(Call(model="models/gemini-2.0-flash", parts=("hi",)))
    body = orjson.loads(request.body)
    assert request.url == (
        "http://127.0.0.1:9999/v1beta/models/gemini-2.0-flash:generateContent"
    )
    assert "x-goog-api-key" not in request.headers
    assert "systemInstruction" not in body
    assert body["generationConfig"] == {
        "temperature": 0.0,
        "maxOutputTokens": 256,
        "candidateCount": 1,
    }
    assert provider.identity == "gemini:http://127.0.0.1:9999"


def test_missing_key_names_the_variables(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="GEMINI_API_KEY.*GOOGLE_API_KEY"):
        GeminiProvider()
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    assert GeminiProvider().build(Call("m", ("x",))).headers["x-goog-api-key"] == KEY


def test_the_key_never_shows(provider):
    request = provider.build(Call("gemini-2.5-flash", ("x",)))
    assert KEY not in repr(request)
    assert KEY not in repr(provider)
    assert KEY not in str(request.headers)
    body = error_body(400, "INVALID_ARGUMENT", f"API key not valid: {KEY}")
    with pytest.raises(Exception) as caught:
        provider.parse(400, {}, body)
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)


def test_parse_success(provider):
    reply = provider.parse(200, {}, answer())
    assert reply.texts == ("A cuckoo.",)
    assert reply.finish is FinishReason.COMPLETE
    assert reply.usage == Usage(input_tokens=544, output_tokens=13, image_tokens=516)
    assert reply.rate_limit is None


def test_parse_skips_thoughts_and_counts_them_as_output(provider):
    body = answer(
        candidates=[
            {
                "content": {
                    "parts": [
                        {"text": "thinking...", "thought": True},
                        {"text": "Yellow-billed."},
                    ]
                },
                "finishReason": "STOP",
            }
        ],
        usageMetadata={
            "promptTokenCount": 10,
            "candidatesTokenCount": 3,
            "thoughtsTokenCount": 40,
            "cachedContentTokenCount": 4,
        },
    )
    reply = provider.parse(200, {}, body)
    assert reply.texts == ("Yellow-billed.",)
    assert reply.usage == Usage(10, 43, 0, 4)


def test_parse_truncated(provider):
    body = answer(
        candidates=[
            {"content": {"parts": [{"text": "A cu"}]}, "finishReason": "MAX_TOKENS"}
        ]
    )
    assert provider.parse(200, {}, body).finish is FinishReason.TRUNCATED


def test_truncated_with_no_text_is_a_request_failure(provider):
    body = answer(
        candidates=[{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}]
    )
    with pytest.raises(Exception) as caught:
        provider.parse(200, {}, body)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert not caught.value.retryable
    assert caught.value.usage.input_tokens == 544


def test_blocked_prompt_is_final_and_keeps_usage(provider):
    body = orjson.dumps(
        {
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 300},
        }
    )
    with pytest.raises(Exception) as caught:
        provider.parse(200, {}, body)
    error = caught.value
    assert error.kind is ErrorKind.FILTERED
    assert not error.retryable
    assert "SAFETY" in error.message
    assert error.usage == Usage(input_tokens=300)


@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT", "RECITATION"])
def test_blocked_answer_is_final(provider, reason):
    body = answer(candidates=[{"finishReason": reason}])
    with pytest.raises(Exception) as caught:
        provider.parse(200, {}, body)
    assert caught.value.kind is ErrorKind.FILTERED
    assert not caught.value.retryable


def test_other_finish_reasons_are_kept_as_other(provider):
    body = answer(
        candidates=[{"content": {"parts": [{"text": "x"}]}, "finishReason": "LANGUAGE"}]
    )
    assert provider.parse(200, {}, body).finish is FinishReason.OTHER


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"candidates": []}'])
def test_unreadable_answers_are_malformed_and_retryable(provider, body):
    with pytest.raises(Exception) as caught:
        provider.parse(200, {}, body)
    assert caught.value.kind is ErrorKind.MALFORMED
    assert caught.value.retryable


RETRY_19S = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "19s"}


def quota(quota_id: str) -> dict:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaId": quota_id, "quotaValue": "10"}],
    }


def test_rate_limited_minute_is_retryable_after_retry_delay(provider):
    body = error_body(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota",
        [quota("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"), RETRY_19S],
    )
    error = _error(provider, 429, body)
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retryable
    assert error.retry_after_s == 19.0
    assert error.message == "You exceeded your current quota"


def test_daily_quota_is_final(provider):
    body = error_body(
        429,
        "RESOURCE_EXHAUSTED",
        "quota",
        [
            quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
            {"@type": RETRY_19S["@type"], "retryDelay": "52758s"},
        ],
    )
    error = _error(provider, 429, body)
    assert error.kind is ErrorKind.QUOTA
    assert not error.retryable
    assert error.retry_after_s == 52758.0


def test_error_wrapped_in_an_array(provider):
    body = b"[" + error_body(503, "UNAVAILABLE", "The model is overloaded.") + b"]"
    error = _error(provider, 503, body)
    assert error.kind is ErrorKind.OVERLOADED
    assert error.retryable
    assert error.message == "The model is overloaded."


def test_invalid_key_is_an_authentication_error(provider):
    body = error_body(
        400,
        "INVALID_ARGUMENT",
        "API key not valid.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
            }
        ],
    )
    error = _error(provider, 400, body)
    assert error.kind is ErrorKind.AUTHENTICATION
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "state", "kind", "retryable"),
    [
        (400, "INVALID_ARGUMENT", ErrorKind.INVALID_REQUEST, False),
        (400, "FAILED_PRECONDITION", ErrorKind.QUOTA, False),
        (402, "RESOURCE_EXHAUSTED", ErrorKind.QUOTA, False),
        (403, "PERMISSION_DENIED", ErrorKind.AUTHENTICATION, False),
        (404, "NOT_FOUND", ErrorKind.NOT_FOUND, False),
        (500, "INTERNAL", ErrorKind.SERVER, True),
        (504, "DEADLINE_EXCEEDED", ErrorKind.TIMEOUT, True),
    ],
)
def test_error_classes(provider, status, state, kind, retryable):
    error = _error(provider, status, error_body(status, state, "m"))
    assert (error.kind, error.retryable, error.status) == (kind, retryable, status)


def test_non_json_error_body_is_classified_by_status(provider):
    error = _error(provider, 502, b"<html>Bad Gateway</html>")
    assert error.kind is ErrorKind.SERVER
    assert error.retryable
    assert "Bad Gateway" in error.message


def test_x_should_retry_overrides(provider):
    error = _error(
        provider, 500, error_body(500, "INTERNAL", "m"), {"x-should-retry": "false"}
    )
    assert not error.retryable


def test_retry_after_header_is_a_fallback(provider):
    error = _error(
        provider, 429, error_body(429, "RESOURCE_EXHAUSTED", "m"), {"Retry-After": "7"}
    )
    assert error.retry_after_s == 7.0


def test_estimate_counts_text_and_images(provider):
    call = Call("gemini-2.5-flash", (IMAGE, "x" * 40), system="y" * 8)
    assert provider.estimate_input_tokens(call) == 4 + 4 + 2 + 1032 + 10


def _error(provider, status, body, headers=None):
    with pytest.raises(Exception) as caught:
        provider.parse(status, headers or {}, body)
    return caught.value
