"""Licence ids -> rights level (R0..R3), per the rubric in docs/OPENNESS.md."""

from __future__ import annotations

import re
from dataclasses import dataclass

R3_IDS = {
    "apache-2.0",
    "mit",
    "bsd-2-clause",
    "bsd-3-clause",
    "bsd-3-clause-clear",
    "isc",
    "mpl-2.0",
    "gpl-2.0",
    "gpl-3.0",
    "lgpl-2.1",
    "lgpl-3.0",
    "agpl-3.0",
    "epl-1.0",
    "epl-2.0",
    "eupl-1.1",
    "ecl-2.0",
    "afl-3.0",
    "artistic-2.0",
    "bsl-1.0",
    "ms-pl",
    "ncsa",
    "osl-3.0",
    "postgresql",
    "unlicense",
    "zlib",
    "cc0-1.0",
    "cc-by-2.0",
    "cc-by-2.5",
    "cc-by-3.0",
    "cc-by-4.0",
    "cc-by-sa-3.0",
    "cc-by-sa-4.0",
    "cdla-permissive-1.0",
    "cdla-permissive-2.0",
    "cdla-sharing-1.0",
    "odc-by",
    "odbl",
    "pddl",
}
R2_IDS = {
    "llama2",
    "llama3",
    "llama3.1",
    "llama3.2",
    "llama3.3",
    "llama4",
    "gemma",
    "openrail",
    "openrail++",
    "bigscience-openrail-m",
    "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m",
    "creativeml-openrail-m",
}
R1_IDS = {"cc-by-nd-4.0", "deepfloyd-if-license"}
R1_PREFIXES = ("cc-by-nc-",)  # covers cc-by-nc-*, cc-by-nc-sa-*, cc-by-nc-nd-*

# `other` licences are told apart by their license_name.
OTHER_NAMES = {
    "openmdw": 3,
    "qwen": 2,
    "deepseek": 2,
    "falcon-llm-license": 2,
    "nvidia-open-model-license": 2,
    "qwen-research": 1,
    "mrl": 1,
    "exaone": 1,
    "apple-amlr": 1,
}

# What each restrictive licence imposes (shown as flags; OPENNESS.md "flags").
LICENSE_FLAGS = {
    "llama2": {"aup", "user_cap", "terminable"},
    "llama3": {"aup", "user_cap", "attribution_naming", "terminable"},
    "llama3.1": {"aup", "user_cap", "attribution_naming", "terminable"},
    "llama3.2": {"aup", "user_cap", "attribution_naming", "terminable"},
    "llama3.3": {"aup", "user_cap", "attribution_naming", "terminable"},
    "llama4": {"aup", "user_cap", "attribution_naming", "terminable"},
    "gemma": {"aup", "terminable"},
    "other:falcon-llm-license": {"aup", "terminable"},
    "other:qwen-research": {"noncommercial"},
    "other:mrl": {"noncommercial", "terminable"},
    "other:exaone": {"noncommercial"},
    "other:apple-amlr": {"noncommercial"},
    "deepfloyd-if-license": {"noncommercial"},
    "cc-by-nd-4.0": {"no_derivatives"},
}

# Free-text spellings met in GGUF headers and old cards.
_ALIASES = {
    "apache 2.0": "apache-2.0",
    "apache2": "apache-2.0",
    "apache-2": "apache-2.0",
    "apache license 2.0": "apache-2.0",
    "apache license, version 2.0": "apache-2.0",
    "mit license": "mit",
    "llama 2": "llama2",
    "llama 3": "llama3",
    "llama 3.1": "llama3.1",
    "llama 3.2": "llama3.2",
    "llama 3.3": "llama3.3",
    "gemma terms of use": "gemma",
}


@dataclass(frozen=True)
class Rights:
    level: int  # 0..3
    license_key: str  # normalized: "apache-2.0", "other:qwen-research", "" when missing
    reason: str

    @property
    def label(self) -> str:
        return f"R{self.level}"


def normalize(license_id: str | None, license_name: str | None = None) -> str:
    """A comparable key: 'apache-2.0', 'other:qwen-research', or '' for no licence."""
    lid = (license_id or "").strip().lower()
    lid = _ALIASES.get(lid, lid)
    lid = re.sub(r"\s+", "-", lid)
    if lid == "other":
        name = re.sub(r"\s+", "-", (license_name or "").strip().lower())
        return f"other:{name}" if name else "other:"
    return lid


def rights_of(key: str) -> Rights:
    """The rights level of one normalized licence key."""
    if not key:
        return Rights(0, "", "no licence stated")
    if key in R3_IDS:
        return Rights(3, key, f"{key} is an open licence (OSI-approved or open-data)")
    if key in R2_IDS:
        return Rights(2, key, f"{key} allows commercial use under custom terms")
    if key in R1_IDS or key.startswith(R1_PREFIXES):
        return Rights(1, key, f"{key} forbids commercial use or modification")
    if key.startswith("other:"):
        name = key.split(":", 1)[1]
        level = OTHER_NAMES.get(name)
        if level == 3:
            return Rights(3, key, f"'{name}' is an open licence")
        if level == 2:
            return Rights(2, key, f"'{name}' allows commercial use under custom terms")
        if level == 1:
            return Rights(1, key, f"'{name}' is a non-commercial or research-only licence")
        return Rights(0, key, f"licence not recognised: other / {name or '(no name)'}")
    if key in ("unknown", "cc"):
        return Rights(0, key, f"licence '{key}' says nothing usable")
    return Rights(0, key, f"licence not recognised: {key}")


def flags_of(key: str) -> set[str]:
    flags = set(LICENSE_FLAGS.get(key, set()))
    if key.startswith("cc-by-nc"):  # the whole Creative Commons NonCommercial family
        flags.add("noncommercial")
    if key.startswith("cc-by") and "-nd" in key:  # NoDerivatives, alone or with NC
        flags.add("no_derivatives")
    return flags
