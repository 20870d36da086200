"""The product's question, per model and machine: do these weights become a usable system here?

Bands people recognise, from generation speed and time to first token (for a 512-token prompt).
Before a model is measured the band is predicted from the fit estimate and the bandwidth bound,
and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from localopen.core.fit import FitVerdict

BANDS = ("fluent", "comfortable", "readable", "too slow", "does not fit")
# Measured decode speed is usually well below the bandwidth bound (compute, caches, sampling).
PREDICTED_EFFICIENCY = 0.6


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
    basis: str  # predicted | measured (a benchmark or a failed load on this machine)

    @property
    def predicted(self) -> bool:
        return self.basis == "predicted"

    @property
    def label(self) -> str:
        """The band with how it was obtained, as every face shows it."""
        return f"{self.band} ({self.basis})"

    def to_dict(self) -> dict[str, str]:
        return {"band": self.band, "basis": self.basis, "reason": self.reason}


def band_for(tg_tps: float, ttft_s: float | None, t: Thresholds) -> str:
    ttft = ttft_s if ttft_s is not None else 0.0
    if tg_tps >= t.fluent_tps and ttft <= t.fluent_ttft_s:
        return "fluent"
    if tg_tps >= t.comfortable_tps and ttft <= t.comfortable_ttft_s:
        return "comfortable"
    if tg_tps >= t.readable_tps and ttft <= t.readable_ttft_s:
        return "readable"
    return "too slow"


def measured(tg_tps: float, pp_tps: float | None, t: Thresholds, n_prompt: int = 512) -> Verdict:
    """Bands are defined for a 512-token prompt: its first-token time is 512 ÷ prompt speed,
    whatever prompt length was benchmarked."""
    ttft = n_prompt / pp_tps if pp_tps else None
    band = band_for(tg_tps, ttft, t)
    ttft_text = f", first token after {ttft:.1f} s for a {n_prompt}-token prompt" if ttft is not None else ""
    return Verdict(band, f"measured here: {tg_tps:.1f} tokens/s{ttft_text}", "measured")


def predicted(fit: FitVerdict | None, t: Thresholds) -> Verdict:
    if fit is None:
        return Verdict("unknown", "this machine is not read yet", "predicted")
    if fit.code == "no_fit":
        return Verdict("does not fit", fit.detail, "predicted")
    if not fit.decode_bound_tps:
        return Verdict("unknown", "no bandwidth measurement yet", "predicted")
    expected = fit.decode_bound_tps * PREDICTED_EFFICIENCY
    band = band_for(expected, None, t)
    tight = "; memory is tight" if fit.code == "tight" else ""
    return Verdict(
        band,
        f"predicted: about {expected:.0f} tokens/s ({PREDICTED_EFFICIENCY:.0%} of the "
        f"{fit.decode_bound_tps:.0f} tokens/s memory-bandwidth bound){tight}",
        "predicted",
    )


def failed_load(message: str) -> Verdict:
    return Verdict("does not fit", f"the load failed here: {message}", "measured")
