"""The open usability index (#43): this machine's results shared as records in a pull request to a
Hub dataset (the fake Hub on loopback, through huggingface_hub's own create_commit), only after the
user saw them and said so; read back per file, checked, from machines like this one, and shown as
a verdict's basis ("measured on N machines like this one") before any download."""

from __future__ import annotations

import ast
import dataclasses
import getpass
import json
import os
import re
import socket
import sqlite3
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest
from PySide6.QtCore import Qt

from cli_helpers import run
from localopen.app.context import AppContext
from localopen.app.index import read as index_reader
from localopen.app.index import share
from localopen.app.usable.usable_here import MachineSnapshot, catalog_row, quant_rows
from localopen.core.index.layout import CARD_PATH, partition
from localopen.core.index.likeness import shared_speed
from localopen.core.index.trust import check, implausible
from localopen.core.machine.hardware import HardwareProfile
from localopen.core.records import BenchResult
from localopen.core.report.result_record import SCHEMA_VERSION, Basis, MachineClass, ResultRecord
from localopen.core.store import results as results_db

from fake_hub import FakeHub

DATASET = "localopen/open-usability-index"
# A catalog file whose sha256 the catalog records (Ministral 3 3B Q4_K_M, 2.1 GB: it fits here).
MODEL_ID = "ministral-3-3b-instruct-2512"
SHA = "9ed150d4367e68df0ac8e1540f6ddc65b42d0ee26378329d1ecbca60f93fc5f8"
SRC = Path(__file__).resolve().parents[1] / "src" / "localopen"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    server = FakeHub().start()
    server.add_dataset(DATASET)
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_TOKEN", "hf_contributor_token")
    yield server
    server.stop()


def _posts(hub: FakeHub) -> list[str]:
    return [path for method, path, _ in hub.requests if method == "POST"]


def _save_bench(
    ctx: AppContext, sha: str, tg_ts: float = 12.0, name: str = "m-Q4_K_M.gguf", reps: int = 3, probed: str = ""
) -> None:
    """A pp and a tg result of this machine, as a benchmark saves them (`probed`: a probe of this
    Hub repository's file, before any download)."""
    for n_prompt, n_gen, ts in ((512, 0, tg_ts * 9), (0, 128, tg_ts)):
        results_db.save(
            ctx.db,
            BenchResult(
                model_filename=f"hub:{probed}/{name}" if probed else f"/home/someone/models/{name}",
                basis="probed" if probed else "measured",
                repo=probed,
                model_type="llama 1B Q4_K - Medium",
                model_size=800_000_000,
                model_n_params=1_000_000_000,
                n_prompt=n_prompt,
                n_gen=n_gen,
                avg_ns=1,
                stddev_ns=0,
                avg_ts=ts,
                stddev_ts=ts * 0.02,
                samples_ns=[1] * reps,
                samples_ts=[ts] * reps,
                test_time="2026-12-07T21:43:10+00:00",
                n_threads=2,
                test="pp512" if n_prompt else "tg128",
                sha256=sha,
                machine=ctx.machine_id(),
                llama_cpp_version="0.3.36",
                kernels=["CPU_REPACK"],
            ),
        )


# --- publishing -------------------------------------------------------------------------------
def test_nothing_is_sent_until_the_user_says_so_then_one_pull_request_with_the_card(hub: FakeHub) -> None:
    ctx = AppContext()
    _save_bench(ctx, "ab" * 32)
    _save_bench(ctx, "99" * 32, name="two-runs.gguf", reps=2)  # what every reader would leave out
    shown = run("results", "--share")  # not a terminal, no --yes: shown, never sent
    assert shown.returncode == 1 and "Nothing sent: add --yes" in shown.stderr
    assert "1 record(s) left out: fewer than 3 repetitions (every reader leaves such a record out)." in shown.stdout
    assert "- m-Q4_K_M.gguf (abababababab…): pp512 108 and tg128 12 tokens/s, 3 repetitions" in shown.stdout
    assert f"To the Hub dataset {DATASET}" in shown.stdout
    record_line = next(line for line in shown.stdout.splitlines() if line.startswith("{"))
    assert ResultRecord.from_dict(json.loads(record_line)).sha256 == "ab" * 32
    assert _posts(hub) == [] and hub.pull_requests[DATASET] == []

    sent = run("results", "--share", "--yes")
    assert sent.returncode == 0, sent.stderr
    assert f"Opened {hub.endpoint}/datasets/{DATASET}/discussions/1" in sent.stdout
    (pr,) = hub.pull_requests[DATASET]
    assert pr.token == "hf_contributor_token"
    record_files = [p for p in pr.files if p != CARD_PATH]
    assert len(record_files) == 1 and record_files[0].startswith(f"{partition('ab' * 32)}/2026-12-07-")
    assert pr.files[record_files[0]].decode().strip() == record_line  # exactly what was shown
    card = pr.files[CARD_PATH].decode()
    assert "license: cc-by-4.0" in card and "hf://datasets/" in card and "cannot stop" in card

    again = run("results", "--share")
    assert again.returncode == 0 and "Nothing new to share" in again.stdout and "left out" in again.stdout
    hub.merge_pull_request(DATASET, 1)
    _save_bench(ctx, "cd" * 32)
    assert run("results", "--share", "--yes").returncode == 0
    second = hub.pull_requests[DATASET][1]
    assert CARD_PATH not in second.files  # the dataset has its card now
    assert [p.split("/")[2] for p in second.files] == ["cd" * 32]  # only the record not shared yet


def test_offline_the_submission_is_kept_and_sent_with_the_next_share(hub: FakeHub, monkeypatch) -> None:
    ctx = AppContext()
    _save_bench(ctx, "ef" * 32)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port nothing listens on
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed.getsockname()[1]}")
    kept = run("results", "--share", "--yes")
    closed.close()
    assert kept.returncode == 0, kept.stderr
    assert "1 submission(s) kept and sent with your next share" in kept.stdout and "Traceback" not in kept.stderr
    offered = run("results", "--share").stdout  # kept: its records are not offered twice...
    assert "1 earlier submission(s) kept while offline are sent with it" in offered and "{" not in offered
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    submission = share.prepare(ctx)
    assert submission.waiting == 1 and not submission.records
    published = share.publish(ctx, submission)  # ...and sent with the next share
    assert len(published.sent) == 1 and published.waiting == 0
    (pr,) = hub.pull_requests[DATASET]
    assert any(p.startswith(partition("ef" * 32)) for p in pr.files)


def test_without_a_token_nothing_is_lost_and_the_reason_is_said(hub: FakeHub, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(Path(os.environ["LOCALOPEN_HOME"]) / "hf"))  # no stored login either
    ctx = AppContext()
    _save_bench(ctx, "12" * 32)
    out = run("results", "--share", "--yes")
    assert out.returncode == 1 and "Publishing needs a Hugging Face token" in out.stdout
    assert hub.pull_requests[DATASET] == [] and share.prepare(ctx).waiting == 1


def test_only_the_confirmed_steps_call_publish() -> None:
    """The publishing code path is reachable only from the CLI after its answer or --yes, and from
    the share dialog's Publish button."""
    callers = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            for call in [n for n in ast.walk(fn) if isinstance(n, ast.Call)]:
                f = call.func
                if isinstance(f, ast.Attribute) and f.attr == "publish" and getattr(f.value, "id", "") == "share":
                    callers.add(f"{path.relative_to(SRC)}:{fn.name}")
    assert callers == {"cli/bench_commands.py:_share", "ui/share_dialog.py:publish"}
    source = (SRC / "cli" / "bench_commands.py").read_text()
    body = source[source.index("def _share") : source.index("def _compare_builds")]
    assert body.index("if not args.yes:") < body.index("share.publish(")


def test_a_shared_record_names_no_person_no_host_no_place(gemma_path: Path, hub: FakeHub) -> None:
    """A real benchmark, then every identifying value of the environment and of every table of
    the local database looked for in what would be sent."""
    pytest.importorskip("llama_cpp")
    bench = run("bench", str(gemma_path), "-p", "32", "-n", "8", "-r", "3", timeout=300)
    assert bench.returncode == 0, bench.stderr
    ctx = AppContext()
    submission = share.prepare(ctx)
    assert len(submission.records) == 1
    sent = submission.text() + "".join(data.decode() for data in submission.files.values())
    profile = ctx.read_profile(measure=False)
    identifying = {
        socket.gethostname(),
        getpass.getuser(),
        str(Path.home()),
        os.environ["LOCALOPEN_HOME"],
        str(gemma_path.parent),
        profile.fingerprint,
        f"{uuid.getnode():012x}",
    } | {os.environ.get(v, "") for v in ("HOSTNAME", "USER", "LOGNAME", "PWD", "TZ")}
    with sqlite3.connect(ctx.paths.database) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            columns = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
            for row in conn.execute(f"SELECT * FROM {table}"):
                for column, value in zip(columns, row):
                    if isinstance(value, str) and (column in ("machine", "model_path", "path") or "/" in value):
                        identifying |= {value} | set(re.findall(r"/[^\s\"']+", value))
    leaked = {v for v in identifying if len(v) >= 4 and v in sent}
    assert not leaked, leaked
    assert not re.search(r"\d\d:\d\d:\d\d", sent)  # the day only: never a time of day
    assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", sent.replace("0.3.36", ""))  # no IPv4 address
    (record,) = submission.records
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", record.measured_at) and record.version == SCHEMA_VERSION
    assert record.architecture == "gemma3" and record.reps == 3 and record.ttft_ms and record.load_time_ms
    assert record.machine.bandwidth_gbs and record.localopen and implausible(record) is None


# --- reading ----------------------------------------------------------------------------------
def _machine(here: MachineClass, **change) -> MachineClass:
    return dataclasses.replace(here, **change)


def _record(machine: MachineClass, tg: float, **change) -> ResultRecord:
    base = ResultRecord(
        model_file="Ministral-3-3B-Instruct-2512-Q4_K_M.gguf",
        sha256=SHA,
        repo="mistralai/Ministral-3-3B-Instruct-2512-GGUF",
        quantization="Q4_K_M",
        n_params=3_400_000_000,
        size_bytes=2_147_023_008,
        basis=Basis.MEASURED,
        pp_tokens=512,
        pp_ts=tg * 8,
        pp_sd=tg * 0.2,
        tg_tokens=128,
        tg_ts=tg,
        tg_sd=tg * 0.03,
        reps=5,
        n_threads=4,
        n_gpu_layers=0,
        type_k="f16",
        type_v="f16",
        flash_attn="auto",
        machine=machine,
        measured_at="2026-12-01",
    )
    return dataclasses.replace(base, **change)


def _lines(*records: ResultRecord) -> bytes:
    return "".join(json.dumps(r.to_dict()) + "\n" for r in records).encode()


@pytest.fixture
def here() -> tuple[AppContext, HardwareProfile, MachineClass]:
    """This machine as read (its bandwidth measured and kept, so a `localopen` run reads the same)."""
    ctx = AppContext()
    profile = ctx.read_profile()
    assert profile.bandwidth_gbs
    return ctx, profile, MachineClass.of(profile, "CPU", "0.3.36")


def _speed_at(machine: MachineClass, share: float = 0.4) -> float:
    """A plausible generation speed of the file on `machine`: a share of its bandwidth bound."""
    assert machine.bandwidth_gbs
    return round(share * machine.bandwidth_gbs * 1e9 / 2_147_023_008, 3)


def test_machines_like_this_one_give_the_verdict_before_a_download(hub: FakeHub, here, monkeypatch) -> None:
    ctx, profile, mine = here
    folder = partition(SHA)
    b = mine.bandwidth_gbs
    assert b
    # Three independent submissions from machines of this class at 0.8, 1 and 1.25 times this
    # bandwidth, each at 40 % of its bound: all the same speed here once scaled.
    slow, same, fast = (_machine(mine, bandwidth_gbs=round(b * k, 2), cpu_model=f"CPU {k}") for k in (0.8, 1, 1.25))
    t = _speed_at(same)
    hub.add_dataset(
        DATASET,
        {
            f"{folder}/2026-12-01-aaaa.jsonl": _lines(_record(slow, _speed_at(slow)), _record(slow, _speed_at(slow))),
            f"{folder}/2026-12-02-bbbb.jsonl": _lines(_record(same, t)),
            f"{folder}/2026-12-03-cccc.jsonl": _lines(_record(fast, _speed_at(fast))),
            f"{folder}/2026-12-04-dddd.jsonl": _lines(
                _record(same, _speed_at(same, 3.0)),  # three times what its memory allows
                _record(same, t, pp_ts=t / 2),  # prompt slower than generation
                _record(same, t, reps=1),
                _record(_machine(mine, simd="NEON", arch="aarch64"), t),  # not like this one
                _record(_machine(mine, gpus=("NVIDIA RTX 4090",)), t * 9, n_gpu_layers=99),  # on a GPU
            )
            + b"not json\n"
            + json.dumps({**_record(same, t).to_dict(), "version": SCHEMA_VERSION + 1}).encode()
            + b"\n",
            f"{folder}/2026-12-05-ffff.jsonl": b"{}\n" * 100_000,  # 300 KB: no submission is that large
            "records/00/" + "00" * 32 + "/2026-12-01-eeee.jsonl": _lines(_record(same, t, sha256="00" * 32)),
        },
    )
    entry = ctx.catalog.get(MODEL_ID)
    assert entry is not None
    assert index_reader.refresh_models(ctx, [entry]) is None
    listed = [unquote(path) for method, path, _ in hub.requests if method == "GET" and "/tree/" in path]
    assert listed == [f"/api/datasets/{DATASET}/tree/main/{folder}"]  # this file's folder, not the index
    fetched = [path for method, path, _ in hub.requests if "/resolve/" in path and method == "GET"]
    assert len(fetched) == 4 and not any("00" * 32 in p for p in fetched)

    snapshot = MachineSnapshot.read(ctx, profile)
    verdict = catalog_row(ctx, snapshot, entry).verdict
    assert verdict is not None and verdict.basis == "shared" and verdict.machines == 3
    assert verdict.tg_tps == pytest.approx(t, rel=0.01) and verdict.pp_tps == pytest.approx(
        _speed_at(same) * 8, rel=0.01
    )
    assert verdict.basis_words == "measured on 3 machines like this one (open index)"
    assert "they agree" in verdict.reason and "scaled to this machine's memory bandwidth" in verdict.reason
    assert "7 records ignored: 3 implausible" in verdict.reason
    ignored = index_reader.cached(ctx)[SHA].ignored
    assert ignored == {
        "implausible": 3,
        "duplicate": 1,
        "malformed": 1,
        "of a newer schema": 1,
        "file too large to be a submission": 1,
    }
    q4 = next(q for q in quant_rows(ctx, snapshot, entry) if q.quant.type == "Q4_K_M")
    assert q4.verdict == verdict  # the file's row says the same

    # Within a day nothing is asked again; offline the cache answers the same.
    before = len(hub.requests)
    index_reader.refresh_models(ctx, [entry])
    assert len(hub.requests) == before
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert index_reader.refresh(ctx, [SHA], fresh_for_s=0) is None and len(hub.requests) == before
    again = catalog_row(ctx, MachineSnapshot.read(ctx, profile), entry).verdict
    assert again == verdict

    # `info` and `recommend` say it, in their own process (this machine, its bandwidth as kept)
    out = run("info", MODEL_ID, "--json", timeout=120)
    assert out.returncode == 0, out.stderr
    said = json.loads(out.stdout)["usable_here"]
    # (its bandwidth is this machine's as kept, or read again when a busy reading was not kept: the
    # three machines are like it either way, the scaled speed follows the reading)
    assert said["basis"] == "shared" and said["machines"] == 3
    text = run("info", MODEL_ID, timeout=120).stdout
    assert "Usable here: " in text and "(3 like this) — measured on 3 machines like this one" in text


def test_a_measurement_here_and_the_fit_are_never_overridden(hub: FakeHub, here) -> None:
    ctx, profile, mine = here
    checked = check([("a", json.dumps(_record(mine, _speed_at(mine)).to_dict()))])
    assert shared_speed(checked, mine) is not None
    tiny = dataclasses.replace(profile, ram_total=1 << 30, ram_available=1 << 29, gpus=[])
    hub.add_dataset(DATASET, {f"{partition(SHA)}/2026-12-01-aaaa.jsonl": _lines(_record(mine, _speed_at(mine)))})
    entry = ctx.catalog.get(MODEL_ID)
    assert entry is not None
    index_reader.refresh_models(ctx, [entry])
    verdict = catalog_row(ctx, MachineSnapshot.read(ctx, tiny), entry).verdict
    assert verdict is not None and verdict.band == "does not fit" and verdict.basis == "predicted"
    one = catalog_row(ctx, MachineSnapshot.read(ctx, profile), entry).verdict
    assert one is not None and one.basis == "shared" and "one person's word" in one.reason
    # Probed here: this machine's own measurement of the file answers, whatever the index says.
    _save_bench(ctx, SHA, tg_ts=3.0, name=entry.quants[0].pattern.strip("*"), probed=entry.gguf_repo)
    own = catalog_row(ctx, MachineSnapshot.read(ctx, profile), entry).verdict
    assert own is not None and own.basis == "probed" and own.tg_tps == pytest.approx(3.0)


def test_a_version_1_record_still_reads() -> None:
    here = MachineClass("Linux", "x86_64", "CPU", "AVX2", 4, 8, 16, 30.0, (), "CPU", "0.3.30")
    data = _record(here, 10.0).to_dict()
    v1 = {k: v for k, v in data.items() if k not in ("architecture", "kernels", "drafting", "tools", "localopen")}
    v1 |= {"version": 1, "measured_at": "2026-06-01T10:11:12+00:00"}
    record = ResultRecord.from_dict(v1)
    assert record.version == 1 and record.kernels == () and record.tools is None and record.tg_ts == 10.0


# --- the desktop --------------------------------------------------------------------------------
@pytest.fixture
def seeded(hub: FakeHub) -> FakeHub:
    """Two submissions of the Ministral 3 3B file from machines like this one, in the index before
    the app starts (this machine read first: the app then reads the bandwidth kept)."""
    mine = MachineClass.of(AppContext().read_profile(), "CPU", "0.3.36")
    other = _machine(mine, cpu_model="Another CPU of the class")
    folder = partition(SHA)
    hub.add_dataset(
        DATASET,
        {
            f"{folder}/2026-12-01-aaaa.jsonl": _lines(_record(mine, _speed_at(mine))),
            f"{folder}/2026-12-02-bbbb.jsonl": _lines(_record(other, _speed_at(other, 0.42))),
        },
    )
    return hub


def test_compare_shares_in_two_clicks_and_explore_shows_the_basis(seeded: FakeHub, window, qtbot) -> None:
    from localopen.ui.explore_model import KEYS, ROW_ROLE

    hub = seeded
    _save_bench(window.services.ctx, "ab" * 32)
    compare = window.goto("Compare")
    dialogs = []
    for publish in (False, True):
        compare.share_button.click()  # first click: what would be sent
        qtbot.waitUntil(lambda: getattr(compare, "share_dialog", None) not in (None, *dialogs), timeout=20000)
        dialog = compare.share_dialog
        dialogs.append(dialog)
        assert dialog.isVisible() and '"sha256": "' + "ab" * 32 in dialog.records.toPlainText()
        if not publish:
            dialog.reject()
            assert _posts(hub) == []  # seen and cancelled: nothing sent
            continue
        dialog.publish_button.click()  # second click: sent
        qtbot.waitUntil(lambda shown=dialog: "Opened" in shown.outcome.text(), timeout=20000)
    (pr,) = hub.pull_requests[DATASET]
    assert any("ab" * 32 in path for path in pr.files)

    ex = window.goto("Explore")
    qtbot.waitUntil(lambda: ex.settled and ex.proxy.rowCount() > 0, timeout=20000)
    rows = {ex.proxy.index(r, 0).data(): r for r in range(ex.proxy.rowCount())}
    usable = ex.proxy.index(rows[MODEL_ID], KEYS.index("usable"))
    assert "(2 like this)" in usable.data()
    assert usable.data(Qt.ItemDataRole.ToolTipRole).startswith("measured on 2 machines like this one")
    assert ex.proxy.index(rows[MODEL_ID], 0).data(ROW_ROLE).verdict.basis == "shared"
    assert ex.select(MODEL_ID)
    qtbot.waitUntil(lambda: "machines like this one" in ex.detail.toPlainText(), timeout=20000)


def test_a_much_measured_file_costs_its_newest_submissions_only(hub: FakeHub, here, monkeypatch) -> None:
    ctx, _profile, mine = here
    monkeypatch.setattr(index_reader, "NEWEST_SUBMISSIONS", 2)
    folder = partition(SHA)
    days = ["2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03"]
    hub.add_dataset(
        DATASET,
        {
            f"{folder}/{day}-s{i}.jsonl": _lines(_record(mine, _speed_at(mine, 0.3 + i / 100)))
            for i, day in enumerate(days)
        },
    )
    assert index_reader.refresh(ctx, [SHA]) is None
    fetched = sorted(
        path.rsplit("/", 1)[1] for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path
    )
    assert fetched == ["2026-12-02-s2.jsonl", "2026-12-03-s3.jsonl"]
    assert len(index_reader.cached(ctx)[SHA].kept) == 2
