"""The engine: many model calls at once, cached, retried, counted by phase.

A batch goes through three stages. First every request gets its cache key (image
files are hashed once, off the loop) and the whole batch is looked up in the cache in
a few worker-thread calls, so a rerun answers tens of thousands of requests without
touching the network. Then identical requests are folded into one. Last, a pool of
workers no larger than the concurrency sends the misses: each call takes a slot,
prepares its images only now (so memory follows the calls in flight, not the calls
planned), and retries what can be retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp

from cache.images import ImageError, ImagePreparer, PrepSettings
from cache.keys import key_for
from cache.store import ResponseCache
from engine._budget import ByteBudget
from engine.limits import CallTooLargeError, Limiter, LimiterSet
from engine.metrics import CallFinished, Event, PhaseFinished, PhaseStarted, PhaseStats
from engine.request import Failure, ImageRef, Request, Response, Result
from providers.base import (
    Call,
    ConfigError,
    ErrorKind,
    FinishReason,
    Image,
    Provider,
    ProviderError,
    Reply,
    Usage,
)

__all__ = ["Engine", "EngineConfig"]

logger = logging.getLogger(__name__)

# Final errors that every later call to the same (provider, model) would meet too.
_BLOCKING_KINDS = frozenset(
    {str(ErrorKind.AUTHENTICATION), str(ErrorKind.NOT_FOUND), str(ErrorKind.QUOTA)}
)

# The cache's write-ahead log is moved into its database file, in a worker thread,
# after this many answers (a few megabytes of log).
_CHECKPOINT_ANSWERS = 5000

# Cache lookups and digests are done in worker threads in chunks this large: big
# enough that thread hand-offs cost nothing per item, small enough that the loop
# gets control back often.
_CHUNK = 2048


@dataclass(frozen=True)
class EngineConfig:
    """How the engine schedules and retries.

    Attributes:
        concurrency: Calls in flight at most, over all providers.
        max_attempts: Attempts per call, the first included.
        timeout_s: Time allowed for one attempt, from sending to the last byte.
        connect_timeout_s: Time allowed to open a connection.
        backoff_base_s: The first back-off; it doubles with each retry.
        backoff_max_s: The largest back-off.
        max_retry_after_s: The longest wait a provider may ask for; a call asked to
            wait longer fails at once instead (a daily quota, not a busy minute).
        max_body_bytes: Request bodies in flight at most, in bytes: the ceiling on
            memory when many calls carry large images (each body is held about
            twice while it is sent). Calls wait for room, in order.
        images: How images are prepared.
    """

    concurrency: int = 64
    max_attempts: int = 6
    timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    max_body_bytes: int = 512 * 2**20
    images: PrepSettings = field(default_factory=PrepSettings)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.max_attempts < 1:
            raise ValueError(
                f"max_attempts must be at least 1, got {self.max_attempts}"
            )
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")


EventSink = Callable[[Event], None]


class Engine:
    """Run batches of model calls with bounded concurrency, a cache and retries.

    Use it as an async context manager; it owns one aiohttp session for its life.

    Args:
        providers: Provider adapters by the name requests use.
        cache: Where answers are kept; None disables caching.
        config: Scheduling and retry settings.
        on_event: Called with every progress event, on the event loop; keep it cheap.
        limiters: Rate limits per (provider name, model); None sends as fast as the
            concurrency allows (the limits the providers' headers report are then
            still adopted).
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        cache: ResponseCache | None = None,
        config: EngineConfig | None = None,
        on_event: EventSink | None = None,
        limiters: LimiterSet | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.limiters = limiters if limiters is not None else LimiterSet()
        self._providers = dict(providers)
        self._cache = cache
        self._on_event = on_event
        self._images = ImagePreparer(self.config.images, store=cache)
        self._stats: dict[str, PhaseStats] = {}
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._writer: _CacheWriter | None = None
        self._bodies = ByteBudget(self.config.max_body_bytes)
        self._in_flight = 0
        self._lookups = [0, 0]
        self._blocked: dict[tuple[str, str], Failure] = {}
        self._causes_logged: set[tuple[str, str, str, int | None]] = set()

    async def __aenter__(self) -> Engine:
        if self._session is not None:
            raise RuntimeError("this engine is already open")
        connector = aiohttp.TCPConnector(
            limit=self.config.concurrency, limit_per_host=0, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # One attempt's time limit, from taking a connection to the answer's
            # last byte: aiohttp's own timer, cheaper than a timeout scope per call.
            timeout=aiohttp.ClientTimeout(
                total=self.config.timeout_s,
                sock_connect=self.config.connect_timeout_s,
            ),
            # The adapters encode bodies themselves; no cookies cross calls.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._slots = asyncio.Semaphore(self.config.concurrency)
        if self._cache is not None:
            self._writer = _CacheWriter(self._cache)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._writer is not None:
                await self._writer.close()
            if self._cache is not None:
                await asyncio.to_thread(self._images.save_prepared)
                await asyncio.to_thread(self._cache.record_lookups, *self._lookups)
        finally:
            if self._session is not None:
                await self._session.close()
            self._session = None

    @property
    def images_prepared(self) -> int:
        """How many images this engine has made ready from their files: converted,
        or checked and sent as they are (images loaded from the cache not counted)."""
        return self._images.prepared_count

    def stats(self) -> dict[str, PhaseStats]:
        """Return the statistics of every phase so far."""
        return dict(self._stats)

    async def map(
        self, requests: Sequence[Request], phase: str = "default"
    ) -> list[Result]:
        """Run requests and return their results in the order given.

        Each result is a :class:`Response` or a :class:`Failure`; a failure of one
        request never loses the others.

        Raises:
            ConfigError: A request names a provider that is not configured (checked
                before any call is made).
        """
        session = self._open_session()
        self._check_providers(requests)
        stats = self._stats.setdefault(phase, PhaseStats(phase))
        stats.calls += len(requests)
        self._emit(PhaseStarted(phase, len(requests)))

        results: list[Result | None] = [None] * len(requests)
        keys = await self._keys(requests, results)
        misses = await self._answer_from_cache(requests, keys, results, stats)
        if misses:
            await self._run_misses(session, requests, misses, results, stats)
            await asyncio.to_thread(self._images.save_prepared)

        self._emit(PhaseFinished(phase, stats))
        return cast(list[Result], results)

    async def count_cached(self, requests: Sequence[Request]) -> int:
        """Count how many requests the cache already answers, without calling."""
        self._check_providers(requests)
        if self._cache is None:
            return 0
        results: list[Result | None] = [None] * len(requests)
        keys = [k for k in await self._keys(requests, results) if k is not None]
        return await asyncio.to_thread(self._cache.contains_many, keys)

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the engine inside 'async with Engine(...)'")
        return self._session

    def _check_providers(self, requests: Sequence[Request]) -> None:
        unknown = {r.provider for r in requests} - self._providers.keys()
        if unknown:
            known = ", ".join(sorted(self._providers)) or "none"
            raise ConfigError(
                f"requests name provider(s) {', '.join(sorted(unknown))} that are not "
                f"configured (configured: {known})"
            )

    def _emit(self, event: Event) -> None:
        if self._on_event is not None:
            self._on_event(event)

    async def _keys(
        self, requests: Sequence[Request], results: list[Result | None]
    ) -> list[str | None]:
        """Compute every request's key; a request whose image is unreadable fails."""
        paths = {p.path for r in requests for p in r.parts if isinstance(p, ImageRef)}
        digests = await self._digests(paths)
        keys: list[str | None] = []
        for index, request in enumerate(requests):
            fields = self._key_fields(request, digests)
            if isinstance(fields, ImageError):
                results[index] = Failure("image", str(fields))
                keys.append(None)
            else:
                keys.append(key_for(fields))
        return keys

    async def _digests(self, paths: set[str]) -> dict[str, str | ImageError]:
        ordered = sorted(paths)
        digests: dict[str, str | ImageError] = {}
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            digests.update(await asyncio.to_thread(self._digest_chunk, chunk))
        return digests

    def _digest_chunk(self, paths: list[str]) -> dict[str, str | ImageError]:
        out: dict[str, str | ImageError] = {}
        for path in paths:
            try:
                out[path] = self._images.digest_now(path)
            except ImageError as error:
                out[path] = error
        return out

    def _key_fields(
        self, request: Request, digests: Mapping[str, str | ImageError]
    ) -> dict[str, Any] | ImageError:
        """List everything that can change the answer, and nothing else.

        Never the API key, the timeout or the concurrency. Floats are normalised so
        that ``1`` and ``1.0`` are the same temperature.
        """
        parts: list[list[str]] = []
        for part in request.parts:
            if isinstance(part, str):
                parts.append(["text", part])
                continue
            digest = digests[part.path]
            if isinstance(digest, ImageError):
                return digest
            parts.append(["image", digest, self._images.settings.tag])
        return {
            "provider": self._providers[request.provider].identity,
            "model": request.model,
            "parts": parts,
            "system": request.system,
            "temperature": float(request.temperature),
            "top_p": None if request.top_p is None else float(request.top_p),
            "max_tokens": int(request.max_tokens),
            "sample": int(request.sample),
        }

    async def _answer_from_cache(
        self,
        requests: Sequence[Request],
        keys: list[str | None],
        results: list[Result | None],
        stats: PhaseStats,
    ) -> dict[str, list[int]]:
        """Fill cached answers in; return the misses, identical requests folded."""
        found: list[dict[str, Any] | None] = []
        if self._cache is not None:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                found.extend(await asyncio.to_thread(self._cache.get_many, chunk))
        misses: dict[str, list[int]] = {}
        for index, key in enumerate(keys):
            model = requests[index].model
            if key is None:
                self._finish(stats, index, None, results, results[index], model)
                continue
            value = found[index] if found else None
            if value is not None:
                response = _response_from_cache(value)
                stats.saved[model] += response.usage
                self._finish(stats, index, key, results, response, model)
            else:
                misses.setdefault(key, []).append(index)
        self._lookups[0] += sum(1 for v in found if v is not None)
        self._lookups[1] += len(misses)
        return misses

    async def _run_misses(
        self,
        session: aiohttp.ClientSession,
        requests: Sequence[Request],
        misses: dict[str, list[int]],
        results: list[Result | None],
        stats: PhaseStats,
    ) -> None:
        work: Iterator[tuple[str, list[int]]] = iter(misses.items())

        async def worker() -> None:
            # Workers share one iterator: on a single event loop that needs no lock,
            # and it keeps the number of live coroutines at the worker count.
            for key, indices in work:
                request = requests[indices[0]]
                result = await self._call_with_slot(session, request, key, stats)
                self._finish(stats, indices[0], key, results, result, request.model)
                shared = _as_shared(result)
                for index in indices[1:]:
                    if isinstance(shared, Response):
                        stats.saved[request.model] += shared.usage
                    self._finish(stats, index, key, results, shared, request.model)

        workers = min(self.config.concurrency, len(misses))
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())

    def _finish(
        self,
        stats: PhaseStats,
        index: int,
        key: str | None,
        results: list[Result | None],
        result: Result | None,
        model: str,
    ) -> None:
        """Record a request's result, count it and tell the event sink."""
        assert result is not None
        results[index] = result
        if isinstance(result, Failure):
            stats.failures += 1
            stats.failure_kinds[result.kind] += 1
            self._log_failure(stats.phase, model, result)
        else:
            stats.cache_hits += result.cached
        if self._on_event is not None:
            self._on_event(_call_event(stats.phase, key, result, self._in_flight))

    def _log_failure(self, phase: str, model: str, failure: Failure) -> None:
        """Log one error line per cause: a refused model can fail thousands of calls
        the same way. Every failure stays in the results and the events."""
        cause = (phase, model, failure.kind, failure.status)
        if cause in self._causes_logged:
            logger.debug("a %s call to %s failed: %s", phase, model, failure)
            return
        self._causes_logged.add(cause)
        logger.error(
            "a %s call to %s failed: %s (further failures like it are logged at "
            "debug level)",
            phase,
            model,
            failure,
        )

    async def _call_with_slot(
        self,
        session: aiohttp.ClientSession,
        request: Request,
        key: str,
        stats: PhaseStats,
    ) -> Result:
        """Run one call in a concurrency slot and cache its answer; nothing escapes.

        This is the one place that catches every exception: a bug or an odd
        request fails its own item, with the reason, and the batch goes on. The
        slot is held until the answer is committed to the cache, so the calls a
        kill can lose are never more than the concurrency.
        """
        assert self._slots is not None
        async with self._slots:
            blocked = self._blocked.get((request.provider, request.model))
            if blocked is not None:
                message = (
                    f"{blocked.message} (not sent: an earlier call to this model "
                    "was refused the same way)"
                )
                return Failure(blocked.kind, message, 0, blocked.status)
            self._in_flight += 1
            try:
                result = await self._call(session, request, stats)
                if isinstance(result, Response) and self._writer is not None:
                    await self._writer.put(key, _cache_value(result, request))
            except Exception as error:
                logger.exception("a call failed unexpectedly")
                return Failure("internal", f"{type(error).__name__}: {error}")
            finally:
                self._in_flight -= 1
        if isinstance(result, Failure) and result.kind in _BLOCKING_KINDS:
            # A missing model, a refused key or an exhausted quota will refuse every
            # other call to the same model too; sending them would only wait for
            # thousands of identical refusals.
            self._blocked.setdefault((request.provider, request.model), result)
        return result

    async def _call(
        self, session: aiohttp.ClientSession, request: Request, stats: PhaseStats
    ) -> Result:
        """Prepare, send and retry one call until it has an answer or a final error."""
        provider = self._providers[request.provider]
        try:
            call = await self._prepare(request)
        except ImageError as error:
            return Failure("image", str(error))
        limiter = self.limiters.get(request.provider, request.model)
        started = time.perf_counter()
        for attempt in range(1, self.config.max_attempts + 1):
            stats.sent += 1
            if attempt > 1:
                stats.retries += 1
            try:
                reply = await self._attempt(session, provider, limiter, call)
            except ProviderError as error:
                if error.usage is not None:
                    stats.billed[request.model] += error.usage
                delay = self._retry_delay(error, attempt)
                if delay is None:
                    return Failure.from_error(error, attempt)
                logger.debug(
                    "attempt %d failed (%s); retrying in %.2fs",
                    attempt,
                    error.kind,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            stats.billed[request.model] += reply.usage
            latency = time.perf_counter() - started
            stats.latencies_s.append(latency)
            return Response(
                reply.texts, reply.finish, reply.usage, latency, False, attempt
            )
        raise AssertionError("unreachable: the last attempt always returns")

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        provider: Provider,
        limiter: Limiter,
        call: Call,
    ) -> Reply:
        """Wait for the rate limits, send once, and tell the limiter what happened.

        The lease is settled with the usage the answer reports, so an estimate that
        was too high is given back. A 429 or an overload pauses the whole limiter,
        not just this call: every call waiting behind it would meet the same answer.
        The body is built only once the limits admit the call, and dropped after
        the attempt, so calls waiting or backing off hold no body in memory.
        Transport failures, the session's time limit included, become
        :class:`ProviderError`.
        """
        # Estimated per attempt: a limit a provider's headers reported since the
        # last attempt may have made tokens count.
        estimate = provider.estimate_input_tokens(call) if limiter.counts_tokens else 0
        try:
            acquisition = limiter.acquire(
                input_tokens=estimate, output_tokens=call.max_tokens
            )
        except CallTooLargeError as error:
            raise ProviderError(ErrorKind.TOO_LARGE, str(error)) from error
        async with acquisition as lease:
            http = provider.build(call)
            try:
                async with self._bodies.hold(len(http.body)):
                    async with session.post(
                        http.url, data=http.body, headers=http.headers
                    ) as answer:
                        body = await answer.read()
                        reply = provider.parse(answer.status, answer.headers, body)
            except TimeoutError as error:
                timeout = self.config.timeout_s
                raise ProviderError(
                    ErrorKind.TIMEOUT, f"no answer within {timeout:g}s"
                ) from error
            except aiohttp.ClientError as error:
                raise ProviderError(
                    ErrorKind.CONNECTION, f"{type(error).__name__}: {error}"
                ) from error
            except ProviderError as error:
                limiter.observe(error.rate_limit)
                if error.usage is not None:
                    lease.settle(error.usage)
                if error.kind in (ErrorKind.RATE_LIMITED, ErrorKind.OVERLOADED):
                    pause = error.retry_after_s
                    limiter.pause(
                        self.config.backoff_base_s if pause is None else pause
                    )
                raise
            limiter.observe(reply.rate_limit)
            lease.settle(reply.usage)
            return reply

    async def _prepare(self, request: Request) -> Call:
        parts: list[str | Image] = []
        for part in request.parts:
            if isinstance(part, str):
                parts.append(part)
            else:
                digest = self._images.last_digest(part.path) or self._images.digest_now(
                    part.path
                )
                parts.append(await self._images.prepare(part.path, digest))
        return Call(
            model=request.model,
            parts=tuple(parts),
            temperature=float(request.temperature),
            max_tokens=request.max_tokens,
            top_p=request.top_p,
            seed=request.sample,
            system=request.system,
        )

    def _retry_delay(self, error: ProviderError, attempt: int) -> float | None:
        """Return how long to wait before the next attempt, or None to give up.

        Exponential back-off with full jitter spreads retries of calls that failed
        together; a wait the provider asked for is honoured as given.
        """
        if not error.retryable or attempt >= self.config.max_attempts:
            return None
        if error.retry_after_s is not None:
            if error.retry_after_s > self.config.max_retry_after_s:
                return None
            return max(0.0, error.retry_after_s)
        ceiling = min(
            self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1)
        )
        return random.uniform(0.0, ceiling)


class _CacheWriter:
    """Write answers to the cache in group commits, from a worker thread.

    A caller waits until its answer is committed, so an answer counts as done only
    once it is on disk: a process killed at any moment loses at most the calls that
    held a concurrency slot. Answers that arrive while a commit is running, or within
    ``linger_s`` of the first, share the next transaction; one SQLite transaction for
    many answers costs a fraction of one for each.
    """

    def __init__(self, cache: ResponseCache, *, linger_s: float = 0.005) -> None:
        self._cache = cache
        self._linger_s = linger_s
        self._batch: list[tuple[str, dict[str, Any]]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._unsynced = 0
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())

    def put(self, key: str, value: dict[str, Any]) -> asyncio.Future[None]:
        """Queue an answer; the future is done once it is committed (or the write
        failed).

        Cancelling the future (its caller was cancelled) cancels nothing else: the
        answer is already in the batch that other callers share.
        """
        done = self._loop.create_future()
        self._batch.append((key, value))
        self._waiters.append(done)
        self._wake.set()
        return done

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        await self._task

    async def _run(self) -> None:
        while not (self._closed and not self._batch):
            await self._wake.wait()
            self._wake.clear()
            if not self._closed:
                await asyncio.sleep(self._linger_s)
            batch, self._batch = self._batch, []
            waiters, self._waiters = self._waiters, []
            try:
                # On the loop when no one else is writing: far cheaper than a
                # thread hand-off, which costs more than the write itself.
                if batch and not self._cache.set_many_nowait(batch):
                    await asyncio.to_thread(self._cache.set_many, batch)
            except Exception:
                # A failed write (a full disk, a broken database) loses cache
                # entries, never answers, and must not leave callers waiting.
                logger.warning("cannot write %d answers to the cache", len(batch),
                               exc_info=True)  # fmt: skip
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._unsynced += len(batch)
            if self._unsynced >= _CHECKPOINT_ANSWERS or self._closed:
                self._unsynced = 0
                await asyncio.to_thread(self._cache.checkpoint)


def _call_event(phase: str, key: str | None, result: Result, in_flight: int) -> Event:
    if isinstance(result, Failure):
        return CallFinished(
            phase, key, cached=False, failed=True, latency_s=0.0, usage=Usage(),
            attempts=result.attempts, in_flight=in_flight, error=str(result),
        )  # fmt: skip
    return CallFinished(
        phase, key, cached=result.cached, failed=False, latency_s=result.latency_s,
        usage=result.usage, attempts=result.attempts, in_flight=in_flight,
    )  # fmt: skip


def _cache_value(response: Response, request: Request) -> dict[str, Any]:
    usage = response.usage
    return {
        "texts": list(response.texts),
        "finish": str(response.finish),
        "usage": [
            usage.input_tokens,
            usage.output_tokens,
            usage.image_tokens,
            usage.cached_input_tokens,
        ],
        "model": request.model,
    }


def _response_from_cache(value: Mapping[str, Any]) -> Response:
    return Response(
        tuple(value["texts"]),
        FinishReason(value["finish"]),
        Usage(*value["usage"]),
        latency_s=0.0,
        cached=True,
        attempts=0,
    )


def _as_shared(result: Result) -> Result:
    """The result of a request that was folded into an identical one."""
    if isinstance(result, Response):
        return Response(result.texts, result.finish, result.usage, 0.0, True, 0)
    return result
