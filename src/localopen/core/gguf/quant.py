"""Bits per weight of llama.cpp quantization types, for size estimates before download.

Figures are llama.cpp's effective bits per weight (its quantize tool's table, 7B models).
Small models with large vocabularies keep embeddings at higher precision, so their real
files are larger: estimates are always labelled as such until the Hub gives exact sizes.
"""

from __future__ import annotations

BITS_PER_WEIGHT = {
    "F32": 32.0,
    "F16": 16.0,
    "BF16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.56,
    "Q5_K_M": 5.69,
    "Q5_K_S": 5.54,
    "Q5_1": 6.0,
    "Q5_0": 5.5,
    "Q4_K_M": 4.89,
    "Q4_K_S": 4.58,
    "Q4_1": 5.0,
    "Q4_0": 4.55,
    "IQ4_NL": 4.5,
    "IQ4_XS": 4.25,
    "Q3_K_L": 4.27,
    "Q3_K_M": 3.91,
    "Q3_K_S": 3.5,
    "IQ3_M": 3.66,
    "IQ3_XS": 3.3,
    "IQ3_XXS": 3.06,
    "Q2_K": 3.35,
    "Q2_K_S": 2.96,
    "IQ2_M": 2.7,
    "IQ2_S": 2.5,
    "IQ2_XS": 2.31,
    "IQ2_XXS": 2.06,
    "IQ1_M": 1.75,
    "IQ1_S": 1.56,
    "TQ1_0": 1.69,
    "TQ2_0": 2.06,
    "MXFP4": 4.25,
    "MXFP4_MOE": 4.25,
}


def bits_per_weight(quant: str) -> float | None:
    return BITS_PER_WEIGHT.get(quant.upper())


def estimate_file_bytes(n_params: float, quant: str) -> int | None:
    """Size of a GGUF file with n_params weights in this quantization (an estimate)."""
    bpw = bits_per_weight(quant)
    if bpw is None or n_params <= 0:
        return None
    return int(n_params * bpw / 8)
