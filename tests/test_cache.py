"""Cache keys, the response store and image preparation."""

from __future__ import annotations

import base64
import dataclasses
import io
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cache.images import ImageError, ImagePreparer, PrepSettings, prepare_bytes
from cache.keys import key_for
from cache.store import ResponseCache
from engine import Engine, ImageRef, Request, Response
from providers import make_provider
from providers.emulator.server import EmulatorServer
from providers.openai import OpenAIProvider
from tests.conftest import shared_images

# The digests of two different image files, standing in for what the engine computes.
DIGESTS = {"a.jpg": "1" * 64, "b.jpg": "2" * 64}

texts = st.text(max_size=20)
parts = st.lists(
    st.one_of(texts, st.sampled_from(sorted(DIGESTS)).map(ImageRef)), max_size=4
).map(tuple)
requests = st.builds(
    Request,
    provider=st.sampled_from(["p1", "p2"]),
    model=st.sampled_from(["gpt-4o", "gpt-4o-mini"]),
    parts=parts,
    temperature=st.sampled_from([0.0, 0.7, 1.0]),
    max_tokens=st.sampled_from([6, 256]),
    top_p=st.sampled_from([None, 0.9]),
    system=st.sampled_from([None, "be brief"]),
    sample=st.integers(0, 3),
)


def engine_for(base_urls: dict[str, str], key: str = "") -> Engine:
    providers = {name: OpenAIProvider(url, key) for name, url in base_urls.items()}
    return Engine(providers)


def key_of(engine: Engine, request: Request) -> str:
    fields = engine._key_fields(request, DIGESTS)
    assert isinstance(fields, dict)
    return key_for(fields)


ENGINE = engine_for({"p1": "http://a:1/v1", "p2": "http://b:2/v1"})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(requests, requests)
def test_keys_differ_exactly_when_an_answer_changing_field_differs(
    first: Request, second: Request
) -> None:
    same = first == second
    assert (key_of(ENGINE, first) == key_of(ENGINE, second)) == same


@given(requests)
def test_same_model_on_two_servers_is_two_models(request: Request) -> None:
    moved = dataclasses.replace(
        request, provider="p2" if request.provider == "p1" else "p1"
    )
    assert key_of(ENGINE, request) != key_of(ENGINE, moved)


@given(requests, st.text(min_size=1, max_size=30))
def test_key_ignores_api_key_timeout_and_concurrency(
    request: Request, key: str
) -> None:
    from engine import EngineConfig

    other = engine_for({"p1": "http://a:1/v1", "p2": "http://b:2/v1"}, key=key)
    other.config = EngineConfig(concurrency=3, timeout_s=1.0)
    assert key_of(other, request) == key_of(ENGINE, request)


def test_integer_and_float_settings_are_one_key() -> None:
    request = Request("p1", "gpt-4o", ("x",), temperature=1.0)
    assert key_of(ENGINE, request) == key_of(
        ENGINE, dataclasses.replace(request, temperature=1)
    )


@given(
    st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=6)
)
def test_mapping_order_does_not_change_a_key(mapping: dict[str, int]) -> None:
    reordered = dict(reversed(list(mapping.items())))
    assert key_for(mapping) == key_for(reordered)


def test_image_settings_are_part_of_the_key() -> None:
    from engine import EngineConfig

    request = Request("p1", "gpt-4o", ("x", ImageRef("a.jpg")))
    small = engine_for({"p1": "http://a:1/v1"})
    small.config = EngineConfig(images=PrepSettings(max_side=256))
    small._images = ImagePreparer(PrepSettings(max_side=256))
    assert key_of(small, request) != key_of(ENGINE, request)


async def test_changing_a_request_or_response_afterwards_changes_nothing_cached(
    make_image: Callable[..., Path],
    response_cache: ResponseCache,
    emulator: EmulatorServer,
) -> None:
    request = Request("emulator", "gpt-4o", ["describe", ImageRef(str(make_image()))])  # type: ignore[arg-type]
    provider = make_provider("emulator", base_url=emulator.base_url)
    async with Engine({"emulator": provider}, cache=response_cache) as engine:
        [first] = await engine.map([request], "x")
        assert isinstance(first, Response)
        with pytest.raises(dataclasses.FrozenInstanceError):
            first.texts = ("tampered",)  # type: ignore[misc]
        request.parts.append("more")  # type: ignore[attr-defined]
        request.parts.pop()  # type: ignore[attr-defined]
        [second] = await engine.map([request], "x")
    assert isinstance(second, Response) and second.cached
    assert second.texts == first.texts


def test_store_round_trip_and_stats(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    assert cache.get("k") is None
    cache.set("k", {"texts": ["a"], "model": "m"})
    cache.set_many([("k2", {"texts": ["b"], "model": "n"})])
    assert cache.get("k") == {"texts": ["a"], "model": "m"}
    cache.record_lookups(3, 1)
    stats = cache.stats()
    assert stats["entries"] == 2 and stats["per_model"] == {"m": 1, "n": 1}
    assert stats["hit_rate"] == 0.75
    assert cache.clear() == 2 and cache.stats()["entries"] == 0
    cache.close()


def test_a_write_that_would_wait_is_left_to_a_thread(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    other = sqlite3.connect(tmp_path / "c" / "answers.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    assert cache.set_many_nowait([("k", {"texts": ["a"], "model": "m"})]) is False
    other.execute("COMMIT")
    assert cache.get("k") is None
    assert cache.set_many_nowait([("k", {"texts": ["a"], "model": "m"})]) is True
    assert cache.get("k") == {"texts": ["a"], "model": "m"}
    cache.checkpoint()
    other.close()
    cache.close()


def test_cache_in_an_unusable_place_says_where(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    from cache.store import CacheError

    with pytest.raises(CacheError, match="--cache-dir"):
        ResponseCache(blocker / "cache")


def _decoded(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_preparation_orients_converts_and_shrinks(tmp_path: Path) -> None:
    image = Image.new("RGBA", (2000, 1000), (255, 0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", exif=exif)
    prepared = prepare_bytes(buffer.getvalue(), PrepSettings(max_side=500))
    assert (prepared.width, prepared.height) == (250, 500)
    decoded = _decoded(prepared.b64)
    assert decoded.mode == "RGB" and decoded.size == (250, 500)


def test_a_plain_small_jpeg_is_sent_byte_for_byte_and_others_are_re_encoded() -> None:
    plain = io.BytesIO()
    Image.effect_noise((120, 80), 40).convert("RGB").save(plain, "JPEG", quality=97)
    prepared = prepare_bytes(plain.getvalue(), PrepSettings())
    assert base64.b64decode(prepared.b64) == plain.getvalue()
    assert (prepared.width, prepared.height) == (120, 80)

    exif = Image.Exif()
    exif[0x010F] = "camera maker"
    tagged = io.BytesIO()
    Image.effect_noise((120, 80), 40).convert("RGB").save(tagged, "JPEG", exif=exif)
    sent = base64.b64decode(prepare_bytes(tagged.getvalue(), PrepSettings()).b64)
    assert sent != tagged.getvalue() and "exif" not in Image.open(io.BytesIO(sent)).info

    larger = prepare_bytes(plain.getvalue(), PrepSettings(max_side=100))
    assert (larger.width, larger.height) == (100, 67)


def test_a_truncated_plain_jpeg_fails_before_it_is_sent() -> None:
    buffer = io.BytesIO()
    Image.effect_noise((300, 200), 40).convert("RGB").save(buffer, "JPEG")
    with pytest.raises(ImageError, match="^cut.jpg: the image cannot be decoded"):
        prepare_bytes(buffer.getvalue()[:2000], PrepSettings(), name="cut.jpg")


async def test_converted_images_are_stored_and_plain_jpegs_are_not(
    make_image: Callable[..., Path], tmp_path: Path
) -> None:
    plain = str(make_image())
    png = tmp_path / "wide.png"
    Image.new("RGB", (900, 600), (10, 20, 200)).save(png)
    cache = ResponseCache(tmp_path / "c")
    first = ImagePreparer(store=cache)
    for path in (plain, str(png)):
        await first.prepare(path, first.digest_now(path))
    first.save_prepared()
    assert first.prepared_count == 2 and cache.stats()["images"] == 1

    # Another process on the same cache loads the converted image.
    second = ImagePreparer(store=cache)
    converted = await second.prepare(str(png), second.digest_now(str(png)))
    assert second.prepared_count == 0
    assert (converted.width, converted.height) == (768, 512)
    as_is = await second.prepare(plain, second.digest_now(plain))
    assert base64.b64decode(as_is.b64) == Path(plain).read_bytes()
    assert second.prepared_count == 1
    cache.close()


def test_transparency_is_flattened_onto_white() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(buffer, "PNG")
    prepared = prepare_bytes(buffer.getvalue(), PrepSettings())
    assert _decoded(prepared.b64).getpixel((10, 10)) == pytest.approx(
        (255, 255, 255), abs=2
    )


def test_sixteen_bit_images_are_scaled_not_clipped() -> None:
    buffer = io.BytesIO()
    Image.new("I;16", (10, 10), 30000).save(buffer, "PNG")
    prepared = prepare_bytes(buffer.getvalue(), PrepSettings())
    red, _, _ = cast(tuple[int, int, int], _decoded(prepared.b64).getpixel((5, 5)))
    assert red > 240


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty"),
        (b"plain text, not an image", "not an image format"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "cannot be decoded|not an image"),
    ],
)
def test_unreadable_bytes_name_the_file_and_the_reason(
    data: bytes, reason: str
) -> None:
    with pytest.raises(ImageError, match=f"^photo.png: ({reason})"):
        prepare_bytes(data, PrepSettings(), name="photo.png")


def test_truncated_image_fails_cleanly() -> None:
    buffer = io.BytesIO()
    Image.effect_noise((400, 400), 50).convert("RGB").save(buffer, "PNG")
    with pytest.raises(ImageError, match="cannot be decoded"):
        prepare_bytes(buffer.getvalue()[:3000], PrepSettings(), name="cut.png")


def test_decompression_bomb_is_refused() -> None:
    buffer = io.BytesIO()
    Image.new("1", (10000, 10000)).save(buffer, "PNG")
    with pytest.raises(ImageError, match="too many pixels"):
        prepare_bytes(buffer.getvalue(), PrepSettings(), name="bomb.png")


async def test_each_image_is_prepared_once(
    make_image: Callable[..., Path], tmp_path: Path
) -> None:
    path = str(make_image())
    preparer = ImagePreparer(PrepSettings())
    digest = preparer.digest_now(path)
    import asyncio

    images = await asyncio.gather(*(preparer.prepare(path, digest) for _ in range(20)))
    assert preparer.prepared_count == 1
    assert len({image.b64 for image in images}) == 1


def test_every_odd_shared_file_prepares_or_fails_with_a_reason() -> None:
    folder = shared_images("odd")
    outcomes: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".md":
            continue
        try:
            prepared = prepare_bytes(path.read_bytes(), PrepSettings(), name=path.name)
        except ImageError as error:
            assert str(error).startswith(path.name + ": ")
            outcomes[path.name] = "failed"
        else:
            assert _decoded(prepared.b64).mode == "RGB"
            assert max(prepared.width, prepared.height) <= 768
            outcomes[path.name] = "ok"
    assert outcomes["hopper.webp"] == "ok"
    assert outcomes["empty.jpg"] == outcomes["test-ole-file.doc"] == "failed"
    assert outcomes["truncated_image.png"] == "failed"


def test_exif_orientations_of_the_shared_files_come_out_upright() -> None:
    folder = shared_images("odd")
    sizes = {
        prepare_bytes(
            (folder / f"hopper_orientation_{n}.jpg").read_bytes(), PrepSettings()
        ).width
        for n in range(2, 9)
    }
    reference = prepare_bytes((folder / "hopper_gray.jpg").read_bytes(), PrepSettings())
    assert sizes == {reference.width}
