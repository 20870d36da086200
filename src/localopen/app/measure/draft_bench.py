"""Speculative decoding measured: greedy generation of fixed texts, plainly and with a drafter, in
the benchmark's fresh engines; the speed-up per task, and whether the drafted text was the plain
one (it must be, at temperature 0).

The tasks are completions (no chat template: base models take them too): a passage to copy and
code to repeat with one name changed, where the answer repeats its prompt and drafts are accepted
in long runs, and an ordinary question, where they rarely are.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from localopen.app import engine_options
from localopen.core.chat.template import COMPLETION
from localopen.core.options import AnswerOptions, LoadOptions
from localopen.core.records import AnswerStats, BenchResult, LoadInfo
from localopen.core.report.benchstats import mean, stdev
from localopen.engine.client import Engine

_PASSAGE = (
    "The lighthouse keeper climbed the spiral stairs each evening at dusk, carrying a can of oil and a "
    "cloth for the great lens. From the gallery he could see the fishing boats turning for harbour, their "
    "wakes drawing pale lines across the darkening water. He trimmed the wick, polished the brass, and "
    "wrote the time in the log book before the first beam swept out over the rocks."
)
_CODE = """def summarise_orders(orders, tax_rate, discount_codes):
    total = 0.0
    count = 0
    skipped = []
    for order in orders:
        if order.status == "cancelled":
            skipped.append(order.id)
            continue
        subtotal = 0.0
        for line in order.lines:
            if line.quantity <= 0:
                continue
            subtotal += line.price * line.quantity
        code = order.discount_code
        if code in discount_codes:
            subtotal -= subtotal * discount_codes[code]
        total += subtotal
        count += 1
    if count == 0:
        return {"total": 0.0, "count": 0, "skipped": skipped}
    total = total * (1 + tax_rate)
    average = total / count
    return {
        "total": round(total, 2), "count": count, "average": round(average, 2), "skipped": skipped,
    }
"""

TASKS: dict[str, str] = {
    "quote": f"Passage:\n{_PASSAGE}\n\nThe same passage, copied word for word:\n",
    "code": f"# Before:\n{_CODE}\n# After renaming `total` to `amount` (nothing else changed):\n",
    "chat": "Question: Why do leaves change colour in autumn? Explain it simply.\nAnswer:",
}


def generation_tps(stats: AnswerStats) -> float | None:
    """Tokens per second after the first, by the clock: the same measure with and without drafts
    (llama.cpp counts a checked batch of drafts as prompt)."""
    seconds = (stats.total_ms - (stats.ttft_ms or 0.0)) / 1000
    return (stats.completion_tokens - 1) / seconds if stats.completion_tokens > 1 and seconds > 0 else None


def run_task(engine: Engine, prompt: str, n_gen: int) -> tuple[str, AnswerStats]:
    """One greedy generation of n_gen tokens at most: its text and stats."""
    pieces: list[str] = []
    stats = engine.answer(
        [{"role": "user", "content": prompt}],
        engine_options.sampling(temperature=0.0, top_k=1, repeat_penalty=1.0, max_tokens=n_gen, seed=0),
        template=COMPLETION,
        on_piece=lambda p: pieces.append(p.text),
        options=AnswerOptions(raw=True),
    )
    return "".join(pieces), stats


def draft_label(draft: str) -> str:
    """How a result names its drafter: "lookup" or the draft model's file name."""
    return draft if draft == "lookup" else Path(draft).name


def result(
    load: LoadInfo, options: LoadOptions, task: str, n_gen: int, speeds: list[float], draft: str | None
) -> BenchResult:
    """A drafting test's result, in the benchmark's shape."""
    ns = [int(1e9 * n_gen / s) for s in speeds]
    out = BenchResult(
        model_filename=load.path,
        model_type=f"{load.architecture} {load.quantization}",
        model_size=load.weights_bytes,
        model_n_params=load.n_params,
        n_prompt=0,
        n_gen=n_gen,
        avg_ns=int(mean([float(x) for x in ns])),
        stddev_ns=int(stdev([float(x) for x in ns])),
        avg_ts=mean(speeds),
        stddev_ts=stdev(speeds),
        samples_ns=ns,
        samples_ts=speeds,
        test_time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        n_batch=options.n_batch,
        n_ubatch=options.n_ubatch,
        n_threads=load.n_threads,
        type_k=options.type_k,
        type_v=options.type_v,
        flash_attn="on" if options.flash_attn else "off",
        test=f"{task} tg{n_gen}",
        task=task,
        draft=draft_label(draft) if draft else "",
    )
    out.stamp_load(load)
    return out


def measure(
    start_engine: Callable[[], Engine],
    path: Path,
    options: LoadOptions,
    draft: str,
    n_gen: int,
    reps: int,
    stopped: Callable[[], bool],
    on_progress: Callable[[LoadInfo | str], None] | None = None,
) -> tuple[LoadInfo | None, list[BenchResult], bool]:
    """Each task plainly, then with the drafter, each in its own engine (start_engine() makes it and
    the caller ends it): (the plain load, the results, whether it was stopped)."""
    say = on_progress or (lambda _: None)
    plain_texts: dict[str, str] = {}
    results: list[BenchResult] = []
    first_load = None
    said: set[str] = set()
    for way in (None, draft):
        engine = start_engine()
        try:
            load = engine.load(str(path), dataclasses.replace(options, draft=way))
            first_load = first_load or load
            say(load)
            for task, prompt in TASKS.items():
                speeds, same, proposed, kept = [], True, 0, 0
                for rep in range(reps):
                    if stopped():
                        return first_load, results, True
                    label = f"drafting with {draft_label(way)}" if way else "plain"
                    say(f"{path.name}: {task}, {label} ({rep + 1}/{reps})")
                    text, stats = run_task(engine, prompt, n_gen)
                    if way and stats.notice and stats.notice not in said:
                        said.add(stats.notice)  # drafting stopped for this load: why, once
                        say(f"{path.name}: {stats.notice}")
                    tps = generation_tps(stats)
                    if tps is None:
                        continue
                    speeds.append(tps)
                    proposed += stats.draft_proposed or 0
                    kept += stats.draft_accepted or 0
                    if way is None:
                        plain_texts.setdefault(task, text)
                    else:
                        same = same and text == plain_texts.get(task)
                if speeds:
                    r = result(load, options, task, n_gen, speeds, way)
                    r.same_text = same if way else None
                    r.draft_kept = kept / proposed if proposed else None
                    results.append(r)
        finally:
            engine.shutdown()  # before the next way loads: one model in memory at a time
    return first_load, results, False
