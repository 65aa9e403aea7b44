"""Turn the raw runs of every section into ``RESULTS.md``."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._runner import median
from benchmarks.clients import POOL_PROCESSES

__all__ = ["render"]

_PEER_NAMES = {
    "openai": "`openai` AsyncOpenAI + semaphore",
    "litellm": "LiteLLM `acompletion` + semaphore",
    "pool": f"Pool of {POOL_PROCESSES} processes, blocking `requests`",
}


def _rate(r: dict[str, Any]) -> float | None:
    return r["completed"] / r["wall_s"] if r["completed"] and r["wall_s"] else None


def _cpu_us(r: dict[str, Any]) -> float | None:
    return 1e6 * r["cpu_s"] / r["completed"] if r["completed"] else None


def _rss_mb(r: dict[str, Any]) -> float:
    return r["maxrss_kb"] / 1024


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _paired(
    mine: Sequence[dict[str, Any]], theirs: Sequence[dict[str, Any]], figure: Any
) -> float | None:
    """The median over repeats of figure(theirs) / figure(mine), pairing by repeat.

    Runs of the same repeat were made back to back; a client run more often than
    the other is paired over the repeats both have.
    """
    pairs = zip(mine, theirs, strict=False)
    return median([_ratio(figure(t), figure(m)) for m, t in pairs])


def _repeats(throughput: dict[str, Any], kind: str) -> int:
    counts = {len(v) for (k, _), v in throughput["runs"].items() if k == kind}
    return max(counts, default=0)


def _f(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _cmd(command: Sequence[str]) -> str:
    parts = list(command)
    if parts and parts[0].endswith(("python", "python3")) or "/python" in parts[0]:
        parts[0] = ".venv/bin/python"
    return shlex.join(parts)


def _throughput_tables(section: dict[str, Any], latency_s: float) -> list[str]:
    runs = section["runs"]
    concurrencies = sorted({c for kind, c in runs if kind == "engine"})
    lines = [
        "| in flight | ideal calls/s | engine calls/s | engine / ideal | bare calls/s "
        "| bare / ideal | engine / bare calls/s | engine CPU µs/call "
        "| bare CPU µs/call | engine / bare CPU | engine peak MB | bare peak MB "
        "| emulator CPU share |",
        "|" + "---:|" * 13,
    ]
    for c in concurrencies:
        engine, bare = runs[("engine", c)], runs[("bare", c)]
        ideal = c / latency_s
        e_rate = median([_rate(r) for r in engine])
        b_rate = median([_rate(r) for r in bare])
        share = median(
            [r.get("emulator_cpu_s", 0) / r["wall_s"] for r in engine + bare]
        )
        lines.append(
            f"| {c:,} | {ideal:,.0f} | {_f(e_rate, ',.0f')} | "
            f"{_f(_ratio(e_rate, ideal), '.2f')} | {_f(b_rate, ',.0f')} | "
            f"{_f(_ratio(b_rate, ideal), '.2f')} | "
            f"{_f(_paired(bare, engine, _rate), '.2f')} | "
            f"{_f(median([_cpu_us(r) for r in engine]), ',.0f')} | "
            f"{_f(median([_cpu_us(r) for r in bare]), ',.0f')} | "
            f"{_f(_paired(bare, engine, _cpu_us), '.2f')} | "
            f"{_f(median([_rss_mb(r) for r in engine]), ',.0f')} | "
            f"{_f(median([_rss_mb(r) for r in bare]), ',.0f')} | "
            f"{_f(share, '.0%')} |"
        )
    return lines


def _peer_tables(section: dict[str, Any]) -> list[str]:
    runs = section["runs"]
    concurrencies = sorted({c for kind, c in runs if kind == "engine"})
    lines = [
        "| in flight | client | calls/s | calls/s ÷ engine's | CPU µs/call "
        "| CPU ÷ engine's | peak MB | calls done (last repeat) |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    pool = runs.get(("pool", POOL_PROCESSES))
    for c in concurrencies:
        engine = runs[("engine", c)]
        lines.append(
            f"| {c:,} | engine | "
            f"{_f(median([_rate(r) for r in engine]), ',.0f')} | 1 | "
            f"{_f(median([_cpu_us(r) for r in engine]), ',.0f')} | 1 | "
            f"{_f(median([_rss_mb(r) for r in engine]), ',.0f')} | "
            f"{engine[-1]['completed']:,} of {engine[-1]['calls']:,} |"
        )
        for peer in ("openai", "litellm", "pool"):
            theirs = pool if peer == "pool" else runs.get((peer, c))
            if not theirs:
                continue
            last = theirs[-1]
            done = f"{last['completed']:,} of {last['calls']:,}"
            if last["bounded"]:
                done += f" (stopped at {last['wall_s']:.0f} s)"
            if peer == "pool":
                done += f"; {POOL_PROCESSES} in flight"
            lines.append(
                f"| {c:,} | {_PEER_NAMES[peer]} | "
                f"{_f(median([_rate(r) for r in theirs]), ',.0f')} | "
                f"{_f(_paired(engine, theirs, _rate), '.2f')} | "
                f"{_f(median([_cpu_us(r) for r in theirs]), ',.0f')} | "
                f"{_f(_paired(engine, theirs, _cpu_us), '.2f')} | "
                f"{_f(median([_rss_mb(r) for r in theirs]), ',.0f')} | {done} |"
            )
    return lines


def _cache_lines(section: dict[str, Any]) -> list[str]:
    stores = section["stores"]
    names = [
        ("set_many_us", "`set_many`, batches of 2,048 (filling)"),
        ("get_many_us", "`get_many`, batches of 2,048, all hits"),
        ("get_many_miss_us", "`get_many`, misses"),
        ("get_us", "`get`, one key at a time, hits"),
        ("set_us", "`set`, one key at a time (one transaction each)"),
    ]
    sample = int(stores[0]["sample"])
    lines = [
        f"A fresh store filled with {int(stores[0]['filled']):,} answers by "
        f"`set_many`, then read back; `get` and `set` timed on {sample:,} keys each. "
        f"Each figure is the median of {len(stores)} run(s), each in a fresh process.",
        "",
        "| operation | µs per entry |",
        "|---|---:|",
    ]
    for key, label in names:
        lines.append(f"| {label} | {_f(median([s[key] for s in stores]), ',.1f')} |")
    reruns, fill = section["reruns"], section["fill"]
    wall = median([r["wall_s"] for r in reruns])
    mapped = median([r["extra"]["map_s"] for r in reruns])
    proc = median([r["process_s"] for r in reruns])
    calls = reruns[0]["calls"]
    lines += ["", *_autosep_lines(section.get("autosep"))]
    lines += [
        "",
        "The engine's cached-rerun path (the path a cached AutoSEP rerun takes): "
        "distinct requests of a ~300-character prompt and one of "
        f"{section['images']} small images, run once through the emulator at "
        "latency 0 to fill a cache, then each rerun in a fresh client process on "
        "that cache.",
        "",
        "| engine cached rerun | figure |",
        "|---|---:|",
        f"| requests (distinct) | {calls:,} |",
        f"| answered from the cache (last rerun) | {reruns[-1]['extra']['cached']:,} |",
        f"| requests the emulator got during reruns | "
        f"{sum(r['emulator_requests'] for r in reruns):,} |",
        f"| fill run (latency 0, {fill['concurrency']:,} in flight) | "
        f"{fill['wall_s']:.1f} s |",
        f"| rerun: engine open + `map` + close | {_f(wall, '.2f')} s |",
        f"| rerun: `map` alone | {_f(mapped, '.2f')} s |",
        f"| rerun: whole process, imports included | {_f(proc, '.2f')} s |",
        f"| rerun: CPU per call | "
        f"{_f(median([_cpu_us(r) for r in reruns]), ',.0f')} µs |",
        f"| rerun: peak MB | {_f(median([_rss_mb(r) for r in reruns]), ',.0f')} |",
    ]
    return lines


def _autosep_lines(autosep: dict[str, Any] | None) -> list[str]:
    if autosep is None:
        return [
            "A full default AutoSEP run served from the cache was not measured in "
            "this run (quick mode, or `cli.py run` absent); the engine's "
            "cached-rerun path below stands for it."
        ]
    reruns, fill = autosep["reruns"], autosep["fill"]
    last = reruns[-1]
    return [
        "A full default AutoSEP run (`cli.py run`, default settings, its own "
        "in-process emulator), run once to fill a fresh cache, then again with a "
        "fresh run directory each time so that nothing is resumed: every call must "
        "come from the cache. Times are whole processes, start to exit.",
        "",
        "| AutoSEP rerun from the cache | figure |",
        "|---|---:|",
        f"| calls made by the run (last rerun) | {last['calls']:,} |",
        f"| answered from the cache (last rerun) | {last['cache_hits']:,} |",
        f"| sent to the emulator, all reruns | {sum(r['sent'] for r in reruns):,} |",
        f"| fill run ({fill['calls']:,} calls, {fill['sent']:,} sent) "
        f"| {fill['wall_s']:.1f} s |",
        f"| rerun, median of {len(reruns)} | "
        f"{_f(median([r['wall_s'] for r in reruns]), '.2f')} s |",
    ]


def _memory_lines(section: dict[str, Any]) -> list[str]:
    runs = section["runs"]
    lines = [
        f"Files: {section['file_bytes'] / 1e6:.2f} MB of JPEG noise each; sent after "
        f"preparation: {section['sent_b64_bytes'] / 1e3:,.0f} KB of base64 each.",
        "",
        "| calls planned | in flight | runs | peak MB (median) | peak MB (max) "
        "| RSS before the run MB | wall s | failed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for planned in sorted(runs):
        group = runs[planned]
        peaks = [_rss_mb(r) for r in group]
        lines.append(
            f"| {planned:,} | {group[0]['concurrency']:,} | {len(group)} | "
            f"{_f(median(peaks), ',.0f')} | {max(peaks):,.0f} | "
            f"{_f(median([r['rss_before_kb'] / 1024 for r in group]), ',.0f')} | "
            f"{_f(median([r['wall_s'] for r in group]), ',.1f')} | "
            f"{sum(r['failed'] for r in group)} |"
        )
    return lines


def _targets(
    throughput: dict[str, Any], cache: dict[str, Any], memory: dict[str, Any]
) -> list[str]:
    runs = throughput["runs"]
    concurrencies = sorted({c for kind, c in runs if kind == "engine"})
    rows = []
    for c in concurrencies:
        engine, bare = runs[("engine", c)], runs[("bare", c)]
        rate = _paired(bare, engine, _rate)
        cpu = _paired(bare, engine, _cpu_us)
        rows.append(
            (
                f"engine ≥ 0.95 × bare calls/s at {c:,}",
                rate,
                rate is not None and rate >= 0.95,
            )
        )
        rows.append(
            (
                f"engine CPU/call ≤ 1.3 × bare at {c:,}",
                cpu,
                cpu is not None and cpu <= 1.3,
            )
        )
        if c >= 256:
            peers = [
                (k, v)
                for (k, cc), v in runs.items()
                if cc == c and k not in ("engine", "bare")
            ]
            pool = runs.get(("pool", POOL_PROCESSES))
            if pool:
                peers.append(("pool", pool))
            for peer, theirs in peers:
                ratio = _paired(theirs, engine, _rate)
                rows.append(
                    (
                        f"engine calls/s ÷ {peer}'s at {c:,} (> 1)",
                        ratio,
                        ratio is not None and ratio > 1,
                    )
                )
    autosep = cache.get("autosep")
    if autosep is not None:
        wall = median([r["wall_s"] for r in autosep["reruns"]])
        calls = autosep["reruns"][-1]["calls"]
        rows.append(
            (
                f"AutoSEP rerun from the cache, {calls:,} calls, < 10 s (seconds)",
                wall,
                wall is not None and wall < 10,
            )
        )
    wall = median([r["wall_s"] for r in cache["reruns"]])
    calls = cache["reruns"][0]["calls"]
    rows.append(
        (
            f"engine cached rerun of {calls:,} calls < 10 s (seconds)",
            wall,
            wall is not None and wall < 10,
        )
    )
    peaks = {p: median([_rss_mb(r) for r in rs]) for p, rs in memory["runs"].items()}
    top = max(v for v in peaks.values() if v is not None)
    rows.append(
        ("peak memory < 1,024 MB with large images (MB, largest plan)", top, top < 1024)
    )
    low = min(v for v in peaks.values() if v is not None)
    growth = top / low
    rows.append(
        (
            "peak memory flat in calls planned (largest ÷ smallest, ≤ 1.1)",
            growth,
            growth <= 1.1,
        )
    )
    lines = ["| target | measured | met |", "|---|---:|---|"]
    for name, value, ok in rows:
        lines.append(f"| {name} | {_f(value, ',.2f')} | {'yes' if ok else '**no**'} |")
    return lines


def render(
    *,
    path: Path,
    header: list[str],
    throughput: dict[str, Any],
    latency_s: float,
    calls_rule: str,
    ratelimit: list[str],
    cache: dict[str, Any],
    memory: dict[str, Any],
) -> None:
    """Write the whole report to ``path``."""
    commands = throughput["commands"]
    lines = [*header, "", "## Targets", ""]
    lines += _targets(throughput, cache, memory)
    lines += [
        "",
        "## 1. Throughput against the ideal, and the bare floor",
        "",
        f"The emulator answers every call after a fixed {latency_s:g} s, with no rate "
        "limits, so the ideal is (calls in flight) / (latency). A run makes "
        f"{calls_rule} and a distinct prompt, so neither the cache nor the folding "
        "of identical requests helps; the engine gets a fresh cache per run, so "
        "every call reaches the emulator. The bare client is aiohttp, "
        "one session and a semaphore; it reads and base64-encodes the image file on "
        "every call and builds the body with orjson. Calls/s is calls answered over "
        "the run's wall time (first wave and tail included); CPU is the client "
        "process's user + system time over the run; peak MB is its `ru_maxrss`. "
        "The emulator CPU share is the emulator process's CPU over the run's wall "
        "time (one core = 100%). Every client process runs with the settings of "
        "`engine.process.tune_for_many_calls`, as the command line does (glibc's mmap "
        "threshold fixed, the collector's first threshold raised), and its modules "
        "are imported before it is timed. Ratios are medians of the per-repeat "
        f"ratios, over {_repeats(throughput, 'engine')} runs of the engine and of "
        "the bare client at each concurrency; figures are medians over the runs.",
        "",
        *_throughput_tables(throughput, latency_s),
        "",
        "## 2. The peers",
        "",
        "Same emulator, workload and concurrencies, in the same run, each peer "
        f"{max(_repeats(throughput, k) for k in ('openai', 'litellm', 'pool'))} "
        "times (its ratios pair it with the engine run just before or after it). "
        "The peers read "
        "and encode the image on every call, like the bare client. `openai` gets an "
        "httpx pool as large as the concurrency and no retries; LiteLLM gets "
        "`AIOHTTP_CONNECTOR_LIMIT` (and per host) equal to the concurrency. A peer "
        "run is stopped at its deadline, and then its figures cover the calls done "
        "by then. The pool of processes keeps "
        f"{POOL_PROCESSES} calls in flight whatever the row; it is measured once per "
        "repeat and compared with the engine at each concurrency (its peak MB is the "
        f"parent plus {POOL_PROCESSES} times the largest worker).",
        "",
        *_peer_tables(throughput),
    ]
    missing = throughput["missing"]
    if missing:
        lines += ["", "Not measured in this run:", ""]
        lines += [f"- {peer}: {why}" for peer, why in missing.items()]
    lines += ["", "## 3. Rate limits", "", *ratelimit, "", "## 4. Cache", ""]
    lines += _cache_lines(cache)
    lines += [
        "",
        "## 5. Memory with large images",
        "",
        "The engine alone, with the same calls in flight and more calls planned, "
        "against the emulator at a short latency. Images are prepared (shrunk to "
        "768 px, JPEG) once per file and kept in memory; each call in flight holds "
        "its own request body.",
        "",
        *_memory_lines(memory),
        "",
        "## Commands",
        "",
        "```sh",
        f"{_cmd(commands['emulator'])}   # throughput and peers",
    ]
    lines += [f"{_cmd(cmd)}" for kind, cmd in commands.items() if kind != "emulator"]
    lines += [
        f"{_cmd(cache['store_command'])}",
        f"{_cmd(cache['emulator'])}   # cached rerun",
        f"{_cmd(cache['command'])}   # fill, then each timed rerun",
        *(
            [
                f"{_cmd(cache['autosep']['commands'][0])}   # AutoSEP fill",
                f"{_cmd(cache['autosep']['commands'][1])}   # AutoSEP rerun",
            ]
            if cache.get("autosep")
            else []
        ),
        f"{_cmd(memory['emulator'])}   # memory",
        f"{_cmd(memory['command'])}",
        "```",
        "",
        "Temporary paths, ports and nonces differ between runs.",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
