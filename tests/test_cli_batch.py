"""``cli.py batch`` end to end, and that an API key never leaks anywhere."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from cache.store import ResponseCache
from cli import cli
from engine import Engine, Failure, ImageRef, Request, Response
from providers.emulator.server import EmulatorConfig, EmulatorServer
from providers.openai import OpenAIProvider


def write_batch(folder: Path, make_image: Callable[..., Path], count: int) -> Path:
    images = [make_image("b", seed).name for seed in range(5)]
    lines = [
        orjson.dumps(
            {"id": f"q{i}", "prompt": f"Describe {i}.", "images": [images[i % 5]]}
        )
        for i in range(count)
    ]
    lines.insert(3, b"{broken")
    lines.insert(
        5, orjson.dumps({"id": "noimg", "prompt": "x", "images": ["gone.jpg"]})
    )
    lines.insert(7, orjson.dumps({"id": "typo", "promt": "x", "images": []}))
    path = folder / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def read_rows(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_batch_writes_answers_in_order_and_reruns_from_cache(
    tmp_path: Path, make_image: Callable[..., Path]
) -> None:
    source = write_batch(tmp_path, make_image, 40)
    out = tmp_path / "out.jsonl"
    args = [
        "-q",
        "batch",
        str(source),
        "-o",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    runner = CliRunner()

    first = runner.invoke(cli, args)
    rows = read_rows(out)
    assert first.exit_code == 1, first.output  # three bad items
    assert "3 of 43 items failed" in first.output
    assert [row["id"] for row in rows][:3] == ["q0", "q1", "q2"]
    assert "in.jsonl:4: not valid JSON" in rows[3]["error"] and rows[3]["id"] == 4
    assert "gone.jpg" in rows[5]["error"]
    assert "unknown field(s) promt" in rows[7]["error"]
    answered = [row for row in rows if "text" in row]
    assert len(answered) == 40 and not any(row["cached"] for row in answered)

    second = runner.invoke(cli, args)
    assert second.exit_code == 1
    again = read_rows(out)
    assert [r.get("text") for r in again] == [r.get("text") for r in rows]
    assert all(row["cached"] for row in again if "text" in row)


def test_batch_stops_before_calling_when_the_key_is_missing(
    tmp_path: Path, make_image: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    source = write_batch(tmp_path, make_image, 3)
    result = CliRunner().invoke(
        cli, ["batch", str(source), "-o", str(tmp_path / "o"), "--provider", "openai"]
    )
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.output
    assert not (tmp_path / "o").exists()


async def test_api_key_reaches_no_cache_output_log_or_error(
    tmp_path: Path, make_image: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-test-Zq8v3KeyThatMustNeverLeak"
    caplog.set_level(logging.DEBUG)
    image = str(make_image("k", 1))
    requests = [
        Request("p", "gpt-4o", (f"Describe {i}.", ImageRef(image))) for i in range(5)
    ]
    cache = ResponseCache(tmp_path / "cache")
    async with EmulatorServer(EmulatorConfig(api_key=secret)) as emulator:
        good = OpenAIProvider(f"{emulator.base_url}/v1", secret)
        async with Engine({"p": good}, cache=cache) as engine:
            answers = await engine.map(requests, "x")
        wrong = OpenAIProvider(f"{emulator.base_url}/v1", secret + "-old")
        async with Engine({"p": wrong}) as engine:
            refused = await engine.map([Request("p", "gpt-4o", ("other",))], "x")
    cache.close()
    assert all(isinstance(a, Response) for a in answers)
    [failure] = refused
    assert isinstance(failure, Failure) and failure.kind == "authentication"
    assert "redacted" in failure.message
    texts = [str(failure), repr(failure), repr(good), caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    assert not any(secret in text for text in texts)
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_bad_field_types_fail_their_own_items(
    tmp_path: Path, make_image: Callable[..., Path]
) -> None:
    image = make_image("t", 1).name
    lines = [
        {"id": "ok", "prompt": "hi", "images": [image]},
        {"id": "sys", "prompt": "hi", "images": [image], "system": 3},
        {"id": "model", "prompt": "hi", "images": [image], "model": ["x"]},
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["-q", "batch", str(source), "-o", str(out)])
    rows = read_rows(out)
    assert result.exit_code == 1
    assert "text" in rows[0]
    assert rows[1]["error"].endswith('"system" must be a string')
    assert rows[2]["error"].endswith('"model" must be a string')


@pytest.mark.parametrize("where", ["missing/out.jsonl", "in.jsonl"])
def test_an_unwritable_output_is_refused_before_any_call(
    tmp_path: Path, make_image: Callable[..., Path], where: str
) -> None:
    source = write_batch(tmp_path, make_image, 3)
    before = source.read_bytes()
    result = CliRunner().invoke(
        cli, ["batch", str(source), "-o", str(tmp_path / where)]
    )
    assert result.exit_code == 2
    assert "does not exist" in result.output or "overwrite the input" in result.output
    assert source.read_bytes() == before
