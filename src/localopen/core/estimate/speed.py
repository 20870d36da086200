"""How fast a model file will run on this machine, predicted from its shape and a calibration.

Generation reads every active weight once per token, plus a fixed cost per layer (thread
synchronisation, small ops) and per token:   s/token = bytes / bandwidth[family] + layers * a + b
(the effective bandwidth depends on the kernel family: Q5_0 and Q8_0 decode slower per byte).
Prompt processing is matrix work at the speed of the file's quantization kernels, plus the
attention over the prompt (each token against all 512 positions, as llama.cpp computes it):
    s/prompt token = 2 * matrix params / flops[family] + 4 * 512 * attention_dim / attention flops.
The attention term is what makes narrow models slower per parameter than wide ones: fitted on this
2-core machine it ran at ~70 GFLOP/s against the k-quant matrices' ~200, so it took ~30 % of a
512-wide shape's prompt time and ~5 % of an 8B model's.
The calibration measures bandwidth, a, b, the attention's and each quantization family's flops on
zero-data model files written on this machine (app/measure/calibration.py), so the figures are this
machine's and this llama.cpp build's. The fit itself is plain least squares on stored figures.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Which calibrated kernel family a tensor type (or a file's quantization) runs on.
FAMILIES = {
    "F32": "F16", "F16": "F16", "BF16": "F16",
    "Q8_0": "Q8_0",
    "Q4_0": "Q5_0", "Q4_1": "Q5_0", "Q5_0": "Q5_0", "Q5_1": "Q5_0",
}  # fmt: skip
DEFAULT_FAMILY = "K"  # k-quants (Q2_K … Q6_K and their mixes) and i-quants
PROMPT_TOKENS = 512  # the bands' first-token time is for a prompt of this length
QK_K = 256
# A k-quant file whose rows are not a multiple of 256 stores most matrices in llama.cpp's fallback types.
_K_FALLBACK_FAMILY = {"Q6_K": "Q8_0", "Q8_0": "Q8_0"}


def family_of(quantization: str) -> str:
    return FAMILIES.get(quantization.upper(), DEFAULT_FAMILY)


def file_family(quantization: str, n_embd: int) -> str:
    """The kernel family most of a file's matrices use, from its quantization and row length."""
    family = family_of(quantization)
    if family == DEFAULT_FAMILY and n_embd % QK_K:
        return _K_FALLBACK_FAMILY.get(quantization.upper(), "Q5_0")
    return family


@dataclass(frozen=True)
class Features:
    """What the prediction needs to know about a model file."""

    read_bytes: dict[str, int]  # kernel family -> bytes read per generated token (active weights)
    matrix_params: dict[str, int]  # kernel family -> parameters multiplied per prompt token (active)
    n_layers: int
    attention_dim: int  # query heads x head width, summed over the layers

    @property
    def weight_bytes(self) -> int:
        return sum(self.read_bytes.values())

    @property
    def attention_flops(self) -> int:
        """Per token of a PROMPT_TOKENS prompt: scores against every position, then the weighted sum."""
        return 4 * PROMPT_TOKENS * self.attention_dim

    @property
    def family(self) -> str:
        """The family most parameters run on."""
        return _main_family(self.matrix_params)

    @classmethod
    def of(
        cls, weight_bytes: int, n_params: int, n_layers: int, n_vocab: int, n_embd: int, quantization: str,
        attention_dim: int, active_fraction: float = 1.0,
    ) -> Features:  # fmt: skip
        """From a catalog entry: every matrix in the file's main family; the embedding table is a
        lookup. Whether the output matrix is a separate one is not known here: it stays counted
        (for an untied 8B model, ~7 % more prompt work than the file's header would show)."""
        params = max(n_params - n_vocab * n_embd, n_params // 10)
        family = file_family(quantization, n_embd)
        return cls(
            read_bytes={family: int(weight_bytes * active_fraction)},
            matrix_params={family: int(params * active_fraction)},
            n_layers=n_layers,
            attention_dim=attention_dim,
        )

    @classmethod
    def of_tensors(
        cls,
        weight_bytes: int,
        params_by_type: dict[str, int],
        n_layers: int,
        attention_dim: int,
        bytes_by_type: dict[str, int],
        active_fraction: float = 1.0,
    ) -> Features:
        """From a GGUF header's tensor table: parameters and bytes by their tensors' own types (the
        bytes split in the header's proportions when weight_bytes counts every part of a split file)."""
        params_by_family = _by_family(params_by_type)
        bytes_by_family = _by_family(bytes_by_type)
        total = sum(bytes_by_family.values())
        active = weight_bytes * active_fraction
        if total:
            read = {family: int(active * n / total) for family, n in bytes_by_family.items()}
        else:
            read = {_main_family(params_by_family): int(active)}
        matrix = {family: int(params * active_fraction) for family, params in params_by_family.items()}
        return cls(read, matrix, n_layers, attention_dim)


def _main_family(by_family: dict[str, int]) -> str:
    return max(by_family, key=lambda f: by_family[f], default=DEFAULT_FAMILY)


def _by_family(by_type: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for type_name, n in by_type.items():
        family = family_of(type_name)
        out[family] = out.get(family, 0) + n
    return out


@dataclass(frozen=True)
class Sample:
    """One calibration measurement: a shape, and what this machine did with it."""

    features: Features
    tg_tps: float
    pp_tps: float


@dataclass(frozen=True)
class Prediction:
    tg_tps: float
    pp_tps: float

    @property
    def ttft_s(self) -> float:
        return PROMPT_TOKENS / self.pp_tps


@dataclass(frozen=True)
class CalibrationShift:
    """One calibration figure on the previous llama.cpp build and this one."""

    what: str
    unit: str
    old: float
    new: float

    @property
    def change(self) -> float:
        return self.new / self.old - 1 if self.old else 0.0

    def describe(self) -> str:
        return f"{self.what}: {self.old:.1f} → {self.new:.1f} {self.unit} ({self.change:+.0%})"

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "unit": self.unit, "old": self.old, "new": self.new, "change": round(self.change, 4)}


@dataclass(frozen=True)
class Calibration:
    bandwidth_gbs: float  # effective, as generation sees it, for k-quant weights
    tg_layer_s: float
    tg_token_s: float
    pp_attention_gflops: float  # 0: too small to measure on this machine
    pp_gflops: dict[str, float]  # per kernel family
    # Effective bandwidth of generation for the other kernel families (Q5_0 decodes slower per
    # byte than the k-quants here); a family missing from it reads at bandwidth_gbs.
    tg_gbs: dict[str, float] = dataclasses.field(default_factory=dict)
    machine: str = ""
    llama_cpp_version: str = ""
    n_threads: int = 0
    created_at: str = ""
    # "": measured while the machine was calm; else how busy other programs kept it (the figures
    # read low: measured again at the next launch, and never kept over a calm calibration)
    busy: str = ""

    def predict(self, f: Features) -> Prediction:
        tg_s = f.n_layers * self.tg_layer_s + self.tg_token_s
        for family, n_bytes in f.read_bytes.items():
            tg_s += n_bytes / ((self.tg_gbs.get(family) or self.bandwidth_gbs) * 1e9)
        pp_s = f.attention_flops / (self.pp_attention_gflops * 1e9) if self.pp_attention_gflops else 0.0
        for family, params in f.matrix_params.items():
            flops = self.pp_gflops.get(family) or self.pp_gflops[DEFAULT_FAMILY]
            pp_s += 2 * params / (flops * 1e9)
        return Prediction(tg_tps=1 / tg_s, pp_tps=1 / pp_s)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def shift_from(self, old: Calibration) -> list[CalibrationShift]:
        """What changed since an earlier calibration (another llama.cpp build): generation's
        effective bandwidth and each kernel family's prompt compute, both measured."""
        shifts = [CalibrationShift("generation, effective bandwidth (k-quants)", "GB/s", old.bandwidth_gbs,
                                   self.bandwidth_gbs)]  # fmt: skip
        for family, gflops in self.pp_gflops.items():
            if old.pp_gflops.get(family):
                shifts.append(CalibrationShift(f"prompt compute ({family})", "GFLOP/s", old.pp_gflops[family], gflops))
        return shifts

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _least_squares(rows: list[list[float]], y: list[float]) -> list[float]:
    """Non-negative least squares for a few unknowns: solve the normal equations; a negative
    coefficient is dropped (set to 0) and the rest solved again."""
    n = len(rows[0])
    active = list(range(n))
    while True:
        coef = _solve_normal([[r[i] for i in active] for r in rows], y)
        if coef is None or min(coef) >= 0:
            break
        active.pop(min(range(len(coef)), key=lambda i: coef[i]))
        if not active:
            return [0.0] * n
    out = [0.0] * n
    for i, c in zip(active, coef or [0.0] * len(active)):
        out[i] = c
    return out


def _solve_normal(rows: list[list[float]], y: list[float]) -> list[float] | None:
    n = len(rows[0])
    # Scale columns to comparable size: bytes (1e9) next to layer counts (1e1).
    scale = [max(abs(r[j]) for r in rows) or 1.0 for j in range(n)]
    a = [[sum(r[i] / scale[i] * r[j] / scale[j] for r in rows) for j in range(n)] for i in range(n)]
    b = [sum(r[i] / scale[i] * v for r, v in zip(rows, y)) for i in range(n)]
    for col in range(n):  # Gaussian elimination with partial pivoting
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-12:
            return None
        a[col], a[pivot], b[col], b[pivot] = a[pivot], a[col], b[pivot], b[col]
        for r in range(n):
            if r != col:
                k = a[r][col] / a[col][col]
                a[r] = [x - k * z for x, z in zip(a[r], a[col])]
                b[r] -= k * b[col]
    return [b[i] / a[i][i] / scale[i] for i in range(n)]


def fit(samples: list[Sample], **about: Any) -> Calibration:
    """The calibration from measurements of shapes whose matrices are k-quants (at least three, of
    different sizes and depths) and one or more per other family."""
    k_samples = [s for s in samples if s.features.family == DEFAULT_FAMILY]
    if len(k_samples) < 3:
        raise ValueError("the calibration needs at least three k-quant shapes")
    # No free per-token constant: with a handful of noisy samples it trades off against the
    # per-layer cost and was seen to swallow it (small deep models then predicted 60 % too fast).
    tg = _least_squares(
        [[s.features.weight_bytes, s.features.n_layers] for s in k_samples], [1 / s.tg_tps for s in k_samples]
    ) + [0.0]
    # k-quant shapes keep a few non-K tensors (norms): their share is small; count them as K here.
    pp = _least_squares(
        [[2 * sum(s.features.matrix_params.values()), s.features.attention_flops] for s in k_samples],
        [1 / s.pp_tps for s in k_samples],
    )
    if tg[0] <= 0 or pp[0] <= 0:
        raise ValueError("the calibration measurements do not grow with model size")
    bandwidth_gbs = 1 / tg[0] / 1e9
    gflops = {DEFAULT_FAMILY: 1 / pp[0] / 1e9}
    tg_gbs: dict[str, float] = {}
    for family in sorted({s.features.family for s in samples} - {DEFAULT_FAMILY}):
        pp_rates, tg_rates = [], []
        for s in samples:
            if s.features.family != family:
                continue
            # Time left for this family's tensors once the attention (prompt) or the per-layer cost
            # (generation) and the other families' shares are taken.
            f = s.features
            others_pp = sum(
                2 * p / (gflops.get(g, gflops[DEFAULT_FAMILY]) * 1e9) for g, p in f.matrix_params.items() if g != family
            )
            matrix_s = 1 / s.pp_tps - f.attention_flops * pp[1] - others_pp
            if matrix_s > 0:
                pp_rates.append(2 * f.matrix_params[family] / matrix_s / 1e9)
            others_tg = sum(
                n / ((tg_gbs.get(g) or bandwidth_gbs) * 1e9) for g, n in f.read_bytes.items() if g != family
            )
            read_s = 1 / s.tg_tps - f.n_layers * tg[1] - others_tg
            if read_s > 0 and f.read_bytes.get(family):
                tg_rates.append(f.read_bytes[family] / read_s / 1e9)
        if pp_rates:
            gflops[family] = sum(pp_rates) / len(pp_rates)
        if tg_rates:
            tg_gbs[family] = sum(tg_rates) / len(tg_rates)
    return Calibration(
        bandwidth_gbs=bandwidth_gbs,
        tg_layer_s=tg[1],
        tg_token_s=tg[2],
        pp_attention_gflops=1 / pp[1] / 1e9 if pp[1] > 0 else 0.0,
        pp_gflops=gflops,
        tg_gbs=tg_gbs,
        **about,
    )
