"""Tune for this machine: the choice on stored figures (never on timings), and a real sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run
from localopen.app.measure.tune import Candidate, MeasuredSetting, candidates, choose

BASE = Candidate(4, 512, False, "f16")


def _m(candidate: Candidate, tg: float, tg_sd: float = 0.5, pp: float = 400.0, pp_sd: float = 5.0, mem: int = 1000):
    return MeasuredSetting(candidate, pp, pp_sd, tg, tg_sd, mem)


def test_a_setting_is_kept_only_when_it_beats_the_current_one_beyond_the_noise() -> None:
    baseline = _m(BASE, 30.0)
    fa = Candidate(4, 512, True, "f16")
    threads = Candidate(3, 512, False, "f16")
    # +2 % is within the noise and below the 3 % floor: no change.
    assert not choose(baseline, [_m(fa, 30.6)]).changed
    # +10 % with a small spread: kept, the fastest of those that qualify.
    chosen = choose(baseline, [_m(fa, 33.0), _m(threads, 31.5)])
    assert chosen.changed and chosen.best.candidate == fa and chosen.tg_gain == pytest.approx(0.10)
    # +10 % but the runs scatter by ±3 t/s: not beyond the noise.
    assert not choose(baseline, [_m(fa, 33.0, tg_sd=3.0)]).changed
    # Faster generation bought with slower prompts: refused.
    assert not choose(baseline, [_m(fa, 33.0, pp=300.0)]).changed
    # Faster but needing more memory than the current settings: never chosen.
    assert not choose(baseline, [_m(Candidate(4, 1024, False, "f16"), 40.0, mem=2000)]).changed


def test_the_sweep_varies_one_thing_at_a_time_and_quantizes_v_only_with_flash_attention() -> None:
    found = candidates(BASE)
    assert BASE not in found and len(found) == len(set(found))
    assert all(c.flash_attn for c in found if c.kv_cache_type != "f16")
    assert any(c.n_ubatch == 256 for c in found) and any(c.flash_attn for c in found)


@pytest.mark.slow
def test_tune_measures_and_saves_a_preset_with_its_figures(gemma_path: Path) -> None:
    out = run("tune", str(gemma_path), "--reps", "2", "--json", timeout=600)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["baseline"]["tg_ts"] > 0 and report["best"]["tg_ts"] >= report["baseline"]["tg_ts"]
    shown = json.loads(run("preset", str(gemma_path), "--json").stdout)
    if report["changed"]:
        assert shown["preset"]["flash_attn"] == report["best"]["flash_attn"]
        assert shown["loads_with"]["kv_cache_type"] == report["best"]["kv_cache_type"]
    else:
        assert shown["preset"] == {}
