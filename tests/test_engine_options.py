"""Settings reach every face: one place turns settings and a command's flags into engine options,
and `localopen settings` shows and sets what the app's settings dialog does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run
from localopen.app import engine_options
from localopen.app.context import AppContext
from localopen.app.settings import SettingError, Settings
from localopen.cli import flags as cli_flags
from localopen.cli.main import build_parser, run_cli
from localopen.core.options import BenchParams


def _args(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(list(argv))


def test_a_setting_changed_with_localopen_settings_reaches_chat_serve_and_bench(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_cli(["settings", "n_ctx", "1536"]) == 0
    assert run_cli(["settings", "n_threads", "3"]) == 0
    assert run_cli(["settings", "n_gpu_layers", "-1"]) == 0
    capsys.readouterr()
    ctx = AppContext()
    for command in ("chat", "serve"):
        options = cli_flags.load_options_from(ctx, _args(command, "some-model"))
        assert (options.n_ctx, options.n_threads, options.n_gpu_layers) == (1536, 3, -1), command
    load, params = cli_flags.bench_options_from(ctx, _args("bench", "some-model"), Path("some-model.gguf"))
    assert (load.n_threads, load.n_gpu_layers, params.n_threads) == (3, -1, 3)
    assert load.n_ctx == engine_options.BENCH_LOAD_CTX  # a benchmark sizes its own context
    # A flag still wins over the setting.
    options = cli_flags.load_options_from(ctx, _args("chat", "m", "--ctx", "512", "--ngl", "0", "-t", "0"))
    assert (options.n_ctx, options.n_threads, options.n_gpu_layers) == (512, None, 0)


def test_sampling_defaults_live_in_one_place() -> None:
    sampling = cli_flags.sampling_from(_args("chat", "m"))
    assert sampling == engine_options.sampling() == type(sampling)()
    assert cli_flags.sampling_from(_args("chat", "m", "--temperature", "0", "--stop", "X")).stop == ["X"]


def test_settings_show_set_and_unset(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["settings", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {"n_ctx", "models_dir", "offline", "allowed_hosts", "thresholds.readable_tps"} <= set(shown)
    assert run_cli(["settings", "thresholds.readable_tps", "7.5"]) == 0
    assert run_cli(["settings", "allowed_hosts", "box.lan, other.lan"]) == 0
    assert run_cli(["settings", "offline", "yes"]) == 0
    capsys.readouterr()
    settings = AppContext().settings
    assert settings.thresholds.readable_tps == 7.5 and settings.allowed_hosts == ["box.lan", "other.lan"]
    assert settings.offline is True
    assert run_cli(["settings", "allowed_hosts"]) == 0
    assert capsys.readouterr().out.strip() == "box.lan,other.lan"
    assert run_cli(["settings", "--unset", "offline"]) == 0
    assert AppContext().settings.offline is False


def test_a_wrong_setting_is_one_plain_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["settings", "n_ctxx", "5"]) == 1
    assert "No setting 'n_ctxx'" in capsys.readouterr().err
    assert run_cli(["settings", "n_ctx", "lots"]) == 1
    assert "whole number" in capsys.readouterr().err
    with pytest.raises(SettingError):
        Settings().with_value("offline", "perhaps")


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("n_ctx", "99999999999999999999999", "'n_ctx' is 0 to 16777216"),  # written before: 8.5e17 GB asked
        ("n_threads", "-2", "'n_threads' is 0 to 1024"),
        ("n_gpu_layers", "-5", "'n_gpu_layers' is -1 to 100000"),
        ("keep_alive_s", "99999999999", "'keep_alive_s' is -1 to"),
        ("max_parallel_downloads", "0", "'max_parallel_downloads' is 1 to 16"),
        ("thresholds.fluent_tps", "nan", "'thresholds.fluent_tps' is a number"),
    ],
)
def test_every_setting_has_a_range_checked_where_it_is_set(
    key: str, value: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["settings", key, value]) == 1
    assert said in capsys.readouterr().err
    assert AppContext().settings.values()[key] == Settings().values()[key]  # nothing was written


def test_a_saved_setting_out_of_its_range_falls_back_to_its_default(caplog: pytest.LogCaptureFixture) -> None:
    from localopen.core import paths as paths_mod

    paths = paths_mod.app_paths()
    paths_mod.save_settings(paths, {"n_ctx": 10**23, "n_threads": 8})
    loaded = Settings.load(paths)
    assert (loaded.n_ctx, loaded.n_threads) == (Settings().n_ctx, 8)
    assert "n_ctx has an unusable value" in caplog.text


def test_a_preset_is_only_for_a_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "passwd").write_text("root:x:0:0\n")
    assert run_cli(["preset", str(tmp_path / "passwd"), "n_ctx", "512"]) == 1
    assert "is not a GGUF model file" in capsys.readouterr().err
    assert run_cli(["preset", "--json"]) == 0 and json.loads(capsys.readouterr().out) == {}
    assert run_cli(["preset", "no-such-model", "n_ctx", "512"]) == 1


def test_a_models_preset_sits_between_the_settings_and_a_commands_flags(tmp_path) -> None:
    """What a preset names wins over the settings; a flag the person gives wins over the preset;
    what the preset does not name comes from the settings."""
    from localopen.app import presets

    ctx = AppContext()
    ctx.save_settings(ctx.settings.with_value("n_ctx", "8192").with_value("n_gpu_layers", "3"))
    presets.set_value(ctx, "gemma-chat", "n_ctx", "2048")
    presets.set_value(ctx, "gemma-chat", "kv_cache_type", "q8_0")
    presets.set_value(ctx, "gemma-chat", "flash_attn", "on")
    preset = presets.preset_for(ctx, tmp_path / "gemma-chat.gguf")
    options = engine_options.load_options(ctx.settings, preset=preset)
    assert (options.n_ctx, options.type_k, options.type_v, options.flash_attn) == (2048, "q8_0", "q8_0", True)
    assert options.n_gpu_layers == 3  # not in the preset: the setting
    flagged = engine_options.load_options(ctx.settings, preset=preset, n_ctx=1024, kv_cache_type="f16")
    assert (flagged.n_ctx, flagged.type_k) == (1024, "f16")
    assert presets.preset_for(ctx, tmp_path / "other.gguf") == {}
    _, params = engine_options.bench_options(ctx.settings, BenchParams(), preset=preset)
    assert (params.type_k, params.flash_attn) == ("q8_0", "on")  # Compare and bench follow it too
    for key, value in (("kv_cache_type", "q9"), ("flash_attn", "maybe"), ("n_ctx", "0"), ("colour", "blue")):
        with pytest.raises(SettingError):
            presets.set_value(ctx, "gemma-chat", key, value)
    presets.set_value(ctx, "gemma-chat", "n_ctx", None)
    assert "n_ctx" not in presets.preset_for(ctx, tmp_path / "gemma-chat.gguf")


def test_an_installed_models_fit_follows_its_preset_unless_asked(gemma_path: Path) -> None:
    """A q8_0 cache and a 16k context set once for a model: its fit (info, Explore's rows) is
    computed for them; a command's own --ctx or --kv-type still wins."""
    from localopen.app import presets
    from localopen.core.store.library_db import import_file

    ctx = AppContext()
    import_file(ctx.db, gemma_path)
    name = presets.name_of(gemma_path)
    for key, value in (("n_ctx", "16384"), ("kv_cache_type", "q8_0"), ("flash_attn", "on")):
        presets.set_value(ctx, name, key, value)
    ctx.db.close()
    said = json.loads(run("info", str(gemma_path), "--json").stdout)
    assert said["fit"]["memory"]["n_ctx"] == 16384 and said["fit_cache"]["type_k"] == "q8_0"
    assert "Fit at context 16384 (q8_0 KV cache, flash attention on)" in run("info", str(gemma_path)).stdout
    asked = json.loads(run("info", str(gemma_path), "--ctx", "2048", "--kv-type", "f16", "--json").stdout)
    assert asked["fit"]["memory"]["n_ctx"] == 2048 and asked["fit_cache"]["type_k"] == "f16"
    # The smaller cache shows in the estimate: q8_0 holds about half of f16's bytes.
    f16 = json.loads(run("info", str(gemma_path), "--ctx", "16384", "--kv-type", "f16", "--json").stdout)
    assert 0.45 < said["fit"]["memory"]["kv_cache"] / f16["fit"]["memory"]["kv_cache"] < 0.6


# One value other than the default for each load option, as a person types it.
TYPED = {
    "n_ctx": ("1536", 1536),
    "n_threads": ("3", 3),
    "n_gpu_layers": ("-1", -1),
    "kv_cache_type": ("q8_0", "q8_0"),
    "flash_attn": ("on", True),
    "n_batch": ("256", 256),
    "n_ubatch": ("128", 128),
    "use_mmap": ("off", False),
    "draft": ("lookup", "lookup"),
    "models_memory_percent": ("70", 70),
}


def test_every_load_option_round_trips_through_setting_preset_flag_and_load_options() -> None:
    """Each row of core/options.OPTIONS, set as a person sets it: with `localopen settings`, then a
    preset over it, then a command's flag over both; what the engine is asked for follows each."""
    from localopen.app import presets
    from localopen.core.options import OPTIONS, from_values, values_of

    assert set(TYPED) == {o.key for o in OPTIONS}, "a new option needs a value here"
    ctx = AppContext()
    defaults = values_of(engine_options.load_options(Settings()))
    assert defaults == {o.key: o.default for o in OPTIONS}
    for option in OPTIONS:
        text, value = TYPED[option.key]
        assert values_of(from_values({option.key: value}))[option.key] == value
        if option.setting:
            assert getattr(Settings(), option.key) == option.default
            settings = Settings().with_value(option.key, text)
            assert values_of(engine_options.load_options(settings))[option.key] == value, option.key
        if option.preset:
            assert presets.KEYS[option.key] == (option.default, option.words)
            preset = {option.key: presets.parse(option.key, text)}
            assert values_of(engine_options.load_options(Settings(), preset=preset))[option.key] == value
        else:
            assert option.key not in presets.KEYS
        if option.flags:
            got = values_of(cli_flags.load_options_from(ctx, _args("chat", "some-model", option.flags[-1], text)))
            assert got == defaults | {option.key: value}, option.key


def test_a_flag_wins_over_the_preset_which_wins_over_the_setting() -> None:
    from localopen.app import presets

    settings = Settings().with_value("n_ctx", "1024")
    preset = {"n_ctx": presets.parse("n_ctx", "2048")}
    assert engine_options.load_options(settings).n_ctx == 1024
    assert engine_options.load_options(settings, preset=preset).n_ctx == 2048
    assert engine_options.load_options(settings, preset=preset, n_ctx=3072).n_ctx == 3072
    with pytest.raises(TypeError, match="not load options: n_ctxx"):
        engine_options.load_options(settings, n_ctxx=1)
