"""The product's question, per model and machine: do these weights become a usable system here?

Bands people recognise, from generation speed and time to first token (for a 512-token prompt).
Each verdict says how it was obtained: measured (a benchmark of the real file, or a load that
failed here), probed (a benchmark of a zero-data replica of the Hub file, before any download),
shared (the open index's records of the exact file from machines like this one) or predicted
(this machine's calibration applied to the file's shape; without a calibration, a rough share
of the memory-bandwidth bound that says so).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from localopen.core.estimate.memory import FitVerdict

# Before this machine is calibrated: decode speed is well below the bandwidth bound.
UNCALIBRATED_EFFICIENCY = 0.6
ROUGH = "predicted roughly (this machine is not calibrated yet)"
# A calibration taken while other programs kept the cores busy reads low: said wherever it is used.
BUSY = "taken while other programs kept the cores busy: it may read low until measured again when calm"
PROMPT_TOKENS = 512
BASES = ("measured", "probed", "shared", "predicted")


@dataclass(frozen=True)
class Thresholds:
    fluent_tps: float = 20.0
    fluent_ttft_s: float = 1.0
    comfortable_tps: float = 10.0
    comfortable_ttft_s: float = 2.0
    readable_tps: float = 5.0
    readable_ttft_s: float = 10.0

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Thresholds:
        return cls(**{k: float(v) for k, v in saved.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    band: str
    reason: str
    basis: str  # measured | probed | shared | predicted
    tg_tps: float | None = None
    pp_tps: float | None = None
    machines: int = 0  # shared: the independent submissions from machines like this one

    @property
    def predicted(self) -> bool:
        return self.basis == "predicted"

    @property
    def ttft_s(self) -> float | None:
        """Time to first token for a 512-token prompt."""
        return round(PROMPT_TOKENS / self.pp_tps, 2) if self.pp_tps else None

    @property
    def basis_words(self) -> str:
        """How this verdict is known, in words; a prediction without a calibration never claims one."""
        if self.basis == "measured":
            return "measured on this machine"
        if self.basis == "probed":
            return "measured here on the Hub file's header, before downloading"
        if self.basis == "shared":
            return f"measured on {self.machines} machine{'s' if self.machines != 1 else ''} like this one (open index)"
        if self.reason.startswith(ROUGH) or self.tg_tps is None:
            return "predicted roughly: this machine is not calibrated yet"
        if BUSY in self.reason:
            return f"predicted from this machine's calibration, {BUSY}"
        return "predicted from this machine's calibration"

    @property
    def label(self) -> str:
        """The band with how it was obtained, as every face shows it."""
        if self.basis == "shared":
            return f"{self.band} ({self.machines} like this)"
        return f"{self.band} ({self.basis})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "band": self.band,
            "basis": self.basis,
            "tg_tps": round(self.tg_tps, 2) if self.tg_tps else None,
            "pp_tps": round(self.pp_tps, 2) if self.pp_tps else None,
            "ttft_s": self.ttft_s,
            "reason": self.reason,
            **({"machines": self.machines} if self.basis == "shared" else {}),
        }


def band_for(tg_tps: float, ttft_s: float | None, t: Thresholds) -> str:
    ttft = ttft_s if ttft_s is not None else 0.0
    if tg_tps >= t.fluent_tps and ttft <= t.fluent_ttft_s:
        return "fluent"
    if tg_tps >= t.comfortable_tps and ttft <= t.comfortable_ttft_s:
        return "comfortable"
    if tg_tps >= t.readable_tps and ttft <= t.readable_ttft_s:
        return "readable"
    return "too slow"


def _speeds(tg_tps: float, pp_tps: float | None, t: Thresholds, basis: str, how: str, tail: str = "") -> Verdict:
    """Bands are defined for a 512-token prompt: its first-token time is 512 ÷ prompt speed,
    whatever prompt length was benchmarked."""
    ttft = PROMPT_TOKENS / pp_tps if pp_tps else None
    ttft_text = f", first token after {ttft:.1f} s for a {PROMPT_TOKENS}-token prompt" if ttft is not None else ""
    reason = f"{how}: {tg_tps:.1f} tokens/s{ttft_text}{tail}"
    return Verdict(band_for(tg_tps, ttft, t), reason, basis, tg_tps, pp_tps)


def measured(tg_tps: float, pp_tps: float | None, t: Thresholds) -> Verdict:
    return _speeds(tg_tps, pp_tps, t, "measured", "measured here")


def probed(tg_tps: float, pp_tps: float | None, t: Thresholds) -> Verdict:
    return _speeds(tg_tps, pp_tps, t, "probed", "probed here on a zero-data replica of the Hub file")


def shared(tg_tps: float, pp_tps: float, t: Thresholds, words: str, machines: int) -> Verdict:
    """From the open index: the median of machines like this one (`words` says how many, the
    spread and whether they agree)."""
    ttft = PROMPT_TOKENS / pp_tps if pp_tps else None
    reason = words + (f", first token after {ttft:.1f} s for a {PROMPT_TOKENS}-token prompt" if ttft else "")
    return Verdict(band_for(tg_tps, ttft, t), reason, "shared", tg_tps, pp_tps, machines)


def predicted(
    fit: FitVerdict | None, t: Thresholds, speed: tuple[float, float] | None = None, busy: bool = False
) -> Verdict:
    """From the fit and, when this machine is calibrated, its predicted (tg, pp) tokens/s; `busy`:
    the calibration was taken while other programs kept the cores busy."""
    if fit is None:
        return Verdict("unknown", "this machine is not read yet", "predicted")
    if fit.code == "no_fit":
        return Verdict("does not fit", fit.detail, "predicted")
    tight = "; memory is tight" if fit.code == "tight" else ""
    if speed is not None:
        how = "predicted from this machine's calibration" + (f" ({BUSY})" if busy else "")
        return _speeds(speed[0], speed[1], t, "predicted", how, tight)
    if not fit.decode_bound_tps:
        return Verdict("unknown", "no bandwidth measurement yet", "predicted")
    expected = fit.decode_bound_tps * UNCALIBRATED_EFFICIENCY
    band = band_for(expected, None, t)
    return Verdict(
        band,
        f"{ROUGH}: about {expected:.0f} tokens/s, "
        f"{UNCALIBRATED_EFFICIENCY:.0%} of the {fit.decode_bound_tps:.0f} tokens/s memory-bandwidth bound; "
        f"time to first token unknown{tight}",
        "predicted",
        expected,
    )


def for_embeddings(v: Verdict, t: Thresholds) -> Verdict:
    """An embedding model reads text and writes none: it is judged by how fast it reads a
    512-token passage (the bands' first-token time), never by a generation speed."""
    if v.band in ("unknown", "does not fit", "damaged"):
        return v
    if v.pp_tps:
        seconds = PROMPT_TOKENS / v.pp_tps
        reason = (
            f"an embedding model, {v.basis} here: it reads about {v.pp_tps:.0f} tokens/s, a {PROMPT_TOKENS}-token "
            f"passage in {seconds:.1f} s; it writes no text"
        )
        return Verdict(band_for(float("inf"), seconds, t), reason, v.basis, None, v.pp_tps)
    reason = (
        "an embedding model: it writes no text, so a generation speed does not apply; how fast it reads is "
        "known once this machine is calibrated or the model is measured"
    )
    return Verdict("unknown", reason, v.basis, None, None)


DAMAGED = "damaged: "  # a load failure's note when llama.cpp rejected the file itself


def failed_load(message: str) -> Verdict:
    """A load that failed here: the file is damaged (llama.cpp rejects it, whatever the machine),
    or it does not fit or run on this machine."""
    if message.startswith(DAMAGED):
        return Verdict("damaged", message.removeprefix(DAMAGED), "measured")
    return Verdict("does not fit", f"the load failed here: {message}", "measured")
