"""Every record read from the open index is checked before it counts: it must be this schema,
plausible for the machine it names, and counted once. A record that fails is kept out and
counted by reason, so a reader can say "3 records ignored: implausible".

What each check stops (the dataset card says what none of them can):
- malformed: a record that is not JSON, another schema, or a field of the wrong kind;
- newer: a record of a schema this localopen cannot read (update to read it);
- implausible: generation above the memory-bandwidth bound of the machine the record names
  (beyond a margin for the bound's own error), prompt processing slower than generation, fewer
  than three repetitions, or a spread wider than three repetitions of a calm run allow;
- duplicate: the same record submitted twice (by its content hash) counts once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from localopen.core.report.result_record import RecordError, ResultRecord

MIN_REPS = 3
MAX_SPREAD = 0.25  # standard deviation over the mean: a calm run of llama-bench stays well under
# Generation may exceed the bandwidth bound a little: the bound is a copy speed measured once, and
# decoding reads slightly less than the whole file per token.
OVER_BOUND = 1.3
# A record's own bound (which counts a mixture of experts' active weights only) is believed up to
# this many times the whole file's bound.
MOE_BOUND_FACTOR = 20.0


@dataclass(frozen=True)
class Submitted:
    """A record as read, with the submission file it came in (independent submissions agree)."""

    record: ResultRecord
    source: str


@dataclass
class Checked:
    kept: list[Submitted] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)

    def ignored_words(self) -> str:
        """'3 records ignored: 2 implausible, 1 duplicate' ('' when none was)."""
        total = sum(self.ignored.values())
        if not total:
            return ""
        reasons = ", ".join(f"{n} {why}" for why, n in self.ignored.most_common())
        return f"{total} record{'s' if total != 1 else ''} ignored: {reasons}"


def implausible(record: ResultRecord) -> str | None:
    """Why a record's figures cannot be true of the machine it names (None: they can)."""
    if min(record.tg_ts, record.pp_ts, record.size_bytes) <= 0 or record.tg_sd < 0 or record.pp_sd < 0:
        return "a speed or size that is not positive"
    if record.pp_ts < record.tg_ts:
        return "prompt processing slower than generation"
    if record.reps < MIN_REPS:
        return f"fewer than {MIN_REPS} repetitions"
    if record.tg_sd > record.tg_ts * MAX_SPREAD or record.pp_sd > record.pp_ts * MAX_SPREAD:
        return "a spread wider than repeated runs allow"
    bound = _bound(record)
    if bound is not None and record.tg_ts > bound * OVER_BOUND:
        return f"generation at {record.tg_ts:.0f} tokens/s, above the {bound:.0f} tokens/s its memory allows"
    return None


def _bound(record: ResultRecord) -> float | None:
    """The generation speed the record's machine can reach at most on its CPU (None: on a GPU, or
    the bandwidth is not known)."""
    bandwidth = record.machine.bandwidth_gbs
    if record.n_gpu_layers > 0 or not bandwidth:
        return None
    whole_file = bandwidth * 1e9 / record.size_bytes
    own = record.decode_bound_tps
    return min(own, whole_file * MOE_BOUND_FACTOR) if own and own > whole_file else whole_file


def check(lines: Iterable[tuple[str, str]]) -> Checked:
    """Records from (source, JSON line) pairs, checked and counted once."""
    out = Checked()
    seen: set[str] = set()
    for source, line in lines:
        if not line.strip():
            continue
        try:
            record = ResultRecord.from_dict(json.loads(line))
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            out.ignored["malformed"] += 1
            continue
        except RecordError as exc:
            out.ignored["of a newer schema" if "newer" in str(exc) else "malformed"] += 1
            continue
        if implausible(record) is not None:
            out.ignored["implausible"] += 1
            continue
        if record.id in seen:
            out.ignored["duplicate"] += 1
            continue
        seen.add(record.id)
        out.kept.append(Submitted(record, source))
    return out
