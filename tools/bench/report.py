"""The readable tables: one per section, plus the hotspots, each row's target verdict beside it.

Targets are reported ("met" / "NOT met" and by how much), never asserted: this is a benchmark,
its numbers move with the machine, and a red line here is a prompt to look, not a failure.
"""

from __future__ import annotations

from typing import Any

from . import cold_start, init_bench, post_runtime
from .figures import fmt_ms

MIB = 1024 * 1024
STEADY_MIB = 25.0  # the steady-RSS target we hold ourselves to; Lambda's "MB" are MiB


def table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    """Plain-text table; columns in ``right`` are right-aligned (numbers)."""
    right = right if right is not None else set(range(1, len(headers)))
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def render(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(str(cell).rjust(widths[i]) if i in right else str(cell).ljust(widths[i]))
        return "  ".join(out).rstrip()

    return [render(headers), render(["-" * w for w in widths]), *[render(r) for r in rows]]


def _pair(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("median") is None:
        return "-"
    return f"{fmt_ms(stats['median'])} / {fmt_ms(stats['p99'])}"


def _verdict(value: float | None, limit: float | None, unit: str, lower_is_better: bool = True,
             digits: int = 1) -> str:
    if value is None or limit is None:
        return "-"
    ok = value <= limit if lower_is_better else value >= limit
    return (f"{'met' if ok else 'NOT met'} "
            f"({value:,.{digits}f} vs {'≤' if lower_is_better else '≥'} {limit:,.{digits}f}{unit})")


def _median(rows: dict[str, Any], key: str) -> float | None:
    return ((rows.get(f"init.{key}") or {}).get("ready_ms") or {}).get("median")


def init_section(rows: dict[str, Any]) -> list[str]:
    labels = {
        init_bench.PASS_FLOOR: "python3 -I -S -c pass (floor; → exit)",
        init_bench.MINIMAL_FLOOR: "minimal stdlib extension (floor)",
        init_bench.EXTENSION: "lambda-logs-http (built layer, sh launcher)",
    }
    body = []
    n = 0
    for key, label in labels.items():
        row = rows.get(f"init.{key}", {})
        n = max(n, (row.get("ready_ms") or {}).get("n") or 0)
        body.append([label, _pair(row.get("register_ms")), _pair(row.get("ready_ms")),
                     fmt_ms((row.get("cpu_ms") or {}).get("median")), row.get("note", "")])
    out = [f"1. Init overhead: process start → … (ms, median / p99 of {n} interleaved runs)",
           *table(["variant", "→ register", "→ first /event/next", "CPU until idle", "note"],
                  body, right={1, 2, 3})]
    ready = _median(rows, init_bench.EXTENSION)
    base = _median(rows, init_bench.PASS_FLOOR)
    minimal = _median(rows, init_bench.MINIMAL_FLOOR)
    if ready is not None and base is not None:
        limit = base + init_bench.TARGET_MS_OVER_FLOOR
        out.append(f"target: first /event/next ≤ floor(pass) + "
                   f"{init_bench.TARGET_MS_OVER_FLOOR:.0f} ms: {_verdict(ready, limit, ' ms')}")
        out.append(f"extension - pass floor: {ready - base:+.1f} ms; extension - minimal "
                   f"extension: {ready - (minimal or 0):+.1f} ms (what the extension adds over "
                   "the least any Python extension does)")
    return out


def post_section(rows: dict[str, Any], line_counts: list[int]) -> list[str]:
    body = []
    n = 0
    for transport in post_runtime.TRANSPORTS:
        for compression in post_runtime.COMPRESSIONS:
            for lines in line_counts:
                row = rows.get(post_runtime.row_id(transport, compression, lines), {})
                label = [transport, compression, str(lines)]
                if row.get("status") in ("n/a", "skipped", "error"):
                    body.append([*label, row.get("note", row.get("status", "")), "", "", "", "",
                                 "", ""])
                    continue
                held = row.get("runtime_done_to_next_ms")
                n = max(n, (held or {}).get("n") or 0)
                floor = row.get("receiver_rt_ms")
                verdict = "-"
                if lines == post_runtime.TARGET_LINES and held and floor:
                    verdict = _verdict(held.get("median"),
                                       (floor.get("median") or 0)
                                       + post_runtime.TARGET_MS_OVER_RT, " ms", digits=2)
                body.append([*label, _pair(held), _pair(floor),
                             _pair(row.get("receiver_rt_back_to_back_ms")),
                             _pair(row.get("forwarder_ms")), fmt_ms(row.get("overhead_ms")),
                             _pair(row.get("post_runtime_extensions_ms")), verdict])
    return [f"2. Post-runtime overhead per invocation (ms, median / p99 of {n} invocations; "
            "sandbox, real function, freeze on)",
            *table(["transport", "compression", "lines", "runtimeDone → next",
                    "receiver RT (floor)", "RT back-to-back", "forwarder (floor)", "overhead",
                    "PostRuntimeExtensionsDuration",
                    f"target at {post_runtime.TARGET_LINES} lines: ≤ RT + "
                    f"{post_runtime.TARGET_MS_OVER_RT:.0f} ms"],
                   body, right={2, 3, 4, 5, 6, 7, 8}),
            "receiver RT = one round trip after the same idle time as the extension's send (the "
            "invocation period); back-to-back ones, for reference, find the receiver awake. "
            "overhead = median(runtimeDone → next) - median(receiver RT). forwarder = the same "
            "interval for a minimal extension that forwards the raw pushes in one POST (push + "
            "round trip + /event/next in this sandbox). PostRuntimeExtensionsDuration (what "
            "Lambda bills) adds the Telemetry API's ≥ 25 ms buffering."]


def _short(text: str, limit: int = 70) -> str:
    """A note cut to fit a table cell (the JSON keeps it whole)."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


_THROUGHPUT_COLUMNS = ["variant", "records", "records/s (range)", "seconds", "listener ingest/s",
                       "ext CPU", "page faults/record", "other load", "requests / wire",
                       "lost (worst)", "invocation released", "target"]


def throughput_section(rows: dict[str, Any], variants: list[Any]) -> list[str]:
    blank = [""] * len(_THROUGHPUT_COLUMNS)  # a row's empty cells, cut to what a row leaves out
    body = []
    for variant in variants:
        row = rows.get(f"tput.{variant.name}", {})
        if row.get("status") != "ok":
            body.append([variant.label, _short(row.get("note", row.get("status", "missing"))),
                         *blank[2:]])
            continue
        faults = row.get("minor_faults_per_record")
        wire = row.get("wire_bytes") or 0
        release = ("flush budget" if row.get("released_before_delivery")
                   else "after delivery")
        rates = row.get("records_per_s_all") or []
        spread = (f" ({min(rates) / 1000:.0f}-{max(rates) / 1000:.0f}k)" if len(rates) > 1
                  else "")
        noise = row.get("other_cpu_percent_max", row.get("other_cpu_percent"))
        lost = row.get("lost_records_max", row.get("lost_records")) or 0
        lost_text = "0" if not lost else (
            f"{lost:,} in {row.get('runs_with_loss', 1)}/{row.get('runs', 1)} runs")
        body.append([
            variant.label, f"{row['records']:,}", _rate(row.get("records_per_s")) + spread,
            f"{row['seconds']:.2f}" if row.get("seconds") else "-",
            _rate(row.get("ingest_records_per_s")),
            f"{row['extension_cpu_percent']:.0f}%" if row.get("extension_cpu_percent") else "-",
            "-" if faults is None else f"{faults:.2f}",
            "-" if noise is None else f"{noise:.0f}%",
            f"{row.get('requests', 0)} / {wire / MIB:,.0f} MiB", lost_text, release,
            _verdict(row.get("records_per_s"), row.get("target_records_per_s"), "/s",
                     lower_is_better=False, digits=0)
            if row.get("target_records_per_s") else "-",
        ])
    for name in ("plain", "gzip"):
        row = rows.get(f"tput.receiver.{name}", {})
        body.append([row.get("label", f"fast receiver alone, {name}"),
                     f"{row.get('records', 0):,}", _rate(row.get("records_per_s")),
                     f"{row['seconds']:.2f}" if row.get("seconds") else "-", *blank[5:],
                     _short(row.get("note", "(must be far above the rows above)"))])
    return ["3. Throughput: Telemetry pushes (1,000 records) → listener → transform → batch → "
            "encode → send → receiver",
            *table(_THROUGHPUT_COLUMNS, body, right={1, 2, 3, 4, 5, 6, 7, 9}),
            "1 core = extension pinned to CPU 0 (taskset), bench + receiver on CPU 1. "
            "records/s = records received / (first push sent → last record received); the "
            "median of the runs, their range in brackets. lost = pushed but never received "
            "(the extension's summary says why; see the JSON). page faults/record = the "
            "extension's minor faults during the stream, per record: pages taken from the "
            "kernel again and again (each one zeroed first). other load = CPU used by "
            "anything else on the machine meanwhile (% of one CPU, worst run). Released by the "
            "flush budget = /event/next came before every record was delivered (a backlog)."]


def memory_section(rows: dict[str, Any], variants: list[Any]) -> list[str]:
    body = []
    for variant in variants:
        row = rows.get(f"tput.{variant.name}", {})
        if row.get("status") != "ok":
            body.append([variant.label, _short(row.get("note", row.get("status", "missing"))),
                         "", "", "", "", ""])
            continue

        def mib(kib: float | None) -> str:
            return "-" if kib is None else f"{kib / 1024:.1f}"

        idle = row.get("rss_idle_kib")
        peak = row.get("rss_peak_kib_max") or row.get("rss_peak_kib")
        median = row.get("rss_median_kib")
        cap = row.get("buffer_cap_bytes")
        over = "-"
        if idle is not None and peak is not None and cap:
            grown = (peak - idle) * 1024
            over = (f"{grown / MIB:.1f} (cap {cap / MIB:.0f}: "
                    + ("within" if grown <= cap else f"cap + {(grown - cap) / MIB:.1f}") + ")")
        after = row.get("rss_after_kib")
        steady = " / ".join("-" if kib is None else ("met" if kib / 1024 <= STEADY_MIB
                                                     else "NOT met") for kib in (median, after))
        body.append([variant.label, mib(idle), mib(median), mib(peak), mib(after), over, steady])
    return ["4. Memory of the extension process during 3 (MiB; /proc/PID/status; peak = worst run)",
            *table(["variant", "idle RSS", "steady (median)", "peak (VmHWM)", "RSS after",
                    "peak - idle (HTTP_MAX_BUFFER_BYTES)",
                    f"≤ {STEADY_MIB:.0f} MB: steady / after"],
                   body, right={1, 2, 3, 4}),
            "idle = init settled, before the stream (the sending modules load with the first "
            "batch); steady = median RSS during the stream; RSS after = 0.3 s after the last "
            "record arrived (what a warm environment keeps). MB as Lambda counts them (MiB)."]


def hotspots_section(profile: dict[str, Any]) -> list[str]:
    if not profile:
        return []
    if profile.get("status") != "ok":
        return [f"5. Hotspots: {profile.get('note', 'not profiled')}"]
    out = [f"5. Hotspots: py-spy (250 Hz, GIL holder, all threads) during one 'default, 1 core' "
           "stream "
           f"({profile.get('records_per_s') or 0:,.0f} records/s while sampled; "
           f"{profile['busy_samples']} busy samples, {profile['waiting_samples']} waiting "
           f"left out; % = share of the extension's CPU time, threads weighted by "
           f"{profile.get('weighted_by', 'samples')})"]
    cpu = profile.get("thread_cpu_s") or {}
    total = sum(cpu.values())
    if total:
        out.append("  CPU by thread, measured (/proc schedstat): " + ", ".join(
            f"{name} {seconds:.2f} s ({100 * seconds / total:.0f}%)"
            for name, seconds in sorted(cpu.items(), key=lambda item: -item[1])))
    for key, title in (("threads", "by thread"),
                       ("extension", "by extension function (incl. the stdlib/C it calls)"),
                       ("lines", "by extension source line"),
                       ("leaf", "by innermost frame, any file")):
        out.append(f"  {title}:")
        out.extend(f"    {pct:5.1f}%  {name}" for name, _, pct in profile.get(key, []))
    for thread, entries in (profile.get("by_thread") or {}).items():
        out.append(f"  within the {thread} (% of its samples):")
        out.extend(f"    {pct:5.1f}%  {name}" for name, _, pct in entries)
    return out


def _range(stats: dict[str, Any] | None, digits: int = 0, scale: float = 1.0) -> str:
    """``median (min-max)`` of a summary, scaled (e.g. KiB to MiB); ``-`` without samples."""
    if not stats or stats.get("median") is None:
        return "-"
    median, low, high = (stats[k] / scale for k in ("median", "min", "max"))
    if stats.get("n", 0) < 2:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def _share_label(memory_mb: int | None) -> str:
    if memory_mb is None:
        return "unconstrained"
    return f"{memory_mb} MB ({cold_start.quota_us(memory_mb) / 1000:.1f} ms / 100 ms)"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0f}"


def cold_start_section(rows: dict[str, Any],
                       memory_sizes: tuple[int | None, ...] = cold_start.MEMORY_SIZES
                       ) -> list[str]:
    cs = cold_start
    extensions = cs.EXTENSIONS
    body, detail = [], []
    n = 0
    notes: list[str] = []
    for memory_mb in memory_sizes:
        cells = {v: rows.get(cs.row_id(memory_mb, v), {}) for v in cs.VARIANTS}
        label = _share_label(memory_mb)
        if all(c.get("status") == "skipped" for c in cells.values()):
            body.append([label, _short(cells[cs.NONE].get("note", "skipped"), 60),
                         *[""] * 11])
            continue
        for variant, cell in cells.items():
            n = max(n, (cell.get("init_ms") or {}).get("n") or 0)
            if cell.get("status") == "error":
                notes.append(f"{label}, {variant}: {cell.get('note', 'error')}")
        layer = cells[cs.LAYER]
        verdict = "-"
        if memory_mb == cs.TARGET_RATIO_AT:
            verdict = _verdict(layer.get("added_ratio"), cs.TARGET_RATIO, "x", digits=2)
        elif memory_mb == cs.TARGET_DELTA_AT:
            verdict = _verdict(layer.get("added_over_minimal_ms"), cs.TARGET_DELTA_MS,
                               " ms over the floor's")
        ratios = [layer.get(f"added_ratio_{floor}") for floor in cs.FLOORS]
        body.append([label, *(_range(cells[v].get("init_ms")) for v in cs.VARIANTS),
                     *(_signed(cells[v].get("added_ms")) for v in extensions),
                     *("-" if r is None else f"{r:.2f}x" for r in ratios), verdict])
        detail.append([label,
                       *(_range(cells[v].get("first_invoke_ms"), 1) for v in cs.VARIANTS),
                       *(_range(cells[v].get("extensions_registered_ms")) for v in extensions),
                       *(_range(cells[v].get("ext_cpu_at_init_end_ms"), 1) for v in extensions),
                       *(_range(cells[v].get("rss_after_init_kib"), 1, 1024.0)
                         for v in (cs.MINIMAL, cs.LAYER, cs.STANDALONE))])
    out = [f"6. Cold start as the function feels it: Lambda's init duration (ms; median (range) "
           f"of {n} interleaved rounds; sandbox, awslambdaric sample function, the CPU limited "
           "to Lambda's share for the memory size)",
           *table(["CPU share", "no extension", "floor", "floor on _socket", "lambda-logs-http",
                   "standalone", "added: floor", "_socket floor", "layer", "standalone",
                   "layer / floor", "layer / _socket floor",
                   f"target: ≤ {cs.TARGET_RATIO}x the floor at {cs.TARGET_RATIO_AT} MB, "
                   f"≤ +{cs.TARGET_DELTA_MS:.0f} ms at {cs.TARGET_DELTA_AT} MB"],
                  body, right=set(range(1, 12))),
           "",
           "   the same runs: the first invocation (invoke → response, ms); for floor / _socket "
           "floor / layer: initStart → registered (ms), the extension's CPU by the end of init "
           "(ms, all threads); RSS after init (MiB, floor / layer / standalone)",
           *table(["CPU share", "1st invoke: none", "floor", "_socket floor", "layer",
                   "standalone", "→ register: floor", "_socket", "layer", "standalone",
                   "ext CPU: floor", "_socket", "layer", "standalone", "RSS: floor", "layer",
                   "standalone"],
                  detail, right=set(range(1, 17))),
           "added = median(variant) - median(no extension). The floor registers, subscribes "
           "and calls /event/next with the socket module, nothing else (no listener); the "
           "_socket floor does the same with built-in modules only; all extensions start "
           "through a sh launcher. Work an extension defers past its first /event/next still "
           "competes for the CPU during the runtime's init, or lands in the first invocation "
           "(at 128 MB an invocation needing more than what is left of a period's 7.2 ms "
           "waits for the next period: ~4 ms or ~95 ms)."]
    out.extend(f"   error: {_short(note, 150)}" for note in notes)
    return out
