"""Sharing this machine's results with the open usability index: opt-in and visible.

`prepare` builds a submission from the records not shared yet: exactly the files that would be
sent, which every face shows before anything leaves the machine. Only `publish`, called by the
faces after the user confirmed what they saw (the CLI's answer or --yes, Compare's Publish
button), sends anything: it keeps the submission first (so nothing is lost), then opens a pull
request to the index dataset with the user's own token. Offline, or when the Hub refuses, the
submission waits and is sent with the next share; the faces say so.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from dataclasses import dataclass

from localopen.app.context import AppContext
from localopen.app.measure import benchmark
from localopen.core.hub.client import Hub, HubError, NotFoundError, OfflineError
from localopen.core.index.layout import CARD_PATH, dataset_card, submission_files
from localopen.core.index.trust import implausible
from localopen.core.report.result_record import ResultRecord
from localopen.core.store import index_submissions as store

log = logging.getLogger("localopen.index")


@dataclass(frozen=True)
class Submission:
    """What one share would send: its records, and the files they become, byte for byte."""

    id: str
    repo: str
    records: tuple[ResultRecord, ...]
    files: dict[str, bytes]
    left_out: dict[str, int]  # records not sent, by why (no sha256; what every reader would reject)
    waiting: int  # earlier submissions kept while offline, sent with this one

    @property
    def empty(self) -> bool:
        return not self.records and not self.waiting

    def nothing_lines(self) -> list[str]:
        """What an empty share says: nothing new, and what was left out and why."""
        return [
            "Nothing new to share: every result here is shared already, or none was measured yet.",
            *self.left_out_lines(),
        ]

    def left_out_lines(self) -> list[str]:
        return [f"{count} record(s) left out: {why}." for why, count in self.left_out.items()]

    def text(self) -> str:
        """Everything that would be sent, as the faces show it before asking."""
        lines = [f"To the Hub dataset {self.repo}, as a pull request in your name (reviewed before it is merged):"]
        for r in self.records:
            lines.append(
                f"- {r.model_file} ({r.sha256[:12]}…): pp{r.pp_tokens} {r.pp_ts:g} and tg{r.tg_tokens} {r.tg_ts:g} "
                f"tokens/s, {r.reps} repetitions, {r.n_threads} threads, on {r.machine.cpu_model or r.machine.arch} "
                f"({r.machine.simd}, {r.machine.cores_physical} cores, {r.machine.ram_gib} GiB), {r.measured_at}"
            )
        lines += ["", "The files, byte for byte:"]
        for path, data in self.files.items():
            lines += ["", f"{path}:", data.decode().rstrip("\n")]
        lines.append("")
        lines.append(
            f"The dataset card ({CARD_PATH}: licence CC-BY-4.0, the schema, the protocol) goes with it if the "
            "dataset has none yet."
        )
        lines += self.left_out_lines()
        if self.waiting:
            lines.append(f"{self.waiting} earlier submission(s) kept while offline are sent with it.")
        lines.append(
            "Nothing else is sent: no host or user name, no path, no address, no serial number; the day of each "
            "measurement, not its time."
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class Published:
    sent: list[str]  # the pull requests opened
    waiting: int  # submissions kept to send later
    why: str = ""  # why some are waiting, in words
    offline: bool = False  # they wait for a connection (not for something the user must fix)

    def words(self) -> str:
        parts = [f"Opened {address}" for address in self.sent]
        if self.waiting:
            parts.append(f"{self.waiting} submission(s) kept and sent with your next share: {self.why}")
        return "\n".join(parts) or "Nothing to send."


def prepare(ctx: AppContext, model: str | None = None) -> Submission:
    """This machine's records not shared yet, as the files a share would send."""
    done = store.shared_ids(ctx.db)
    kept: list[ResultRecord] = []
    left_out: Counter[str] = Counter()
    for record in benchmark.records(ctx, model):
        if record.id in done:
            continue
        why = "their file's sha256 is not known" if not record.sha256 else implausible(record)
        if why is None:
            kept.append(record)
        else:  # what every reader would leave out is not sent
            left_out[f"{why} (every reader leaves such a record out)" if record.sha256 else why] += 1
    sid = uuid.uuid4().hex[:12]  # names the file: random, never derived from the machine or person
    records = tuple(kept)
    files = submission_files(records, sid)
    return Submission(sid, ctx.settings.index_repo, records, files, dict(left_out), len(store.waiting(ctx.db)))


def publish(ctx: AppContext, submission: Submission) -> Published:
    """Send a submission the user saw and confirmed, with any kept while offline. It is kept first,
    so a failure loses nothing; each is sent as its own pull request."""
    if submission.records:
        today = dt.datetime.now(dt.timezone.utc).date().isoformat()
        store.add(ctx.db, submission.id, today, submission.repo, submission.files, [r.id for r in submission.records])
    hub = ctx.hub()
    sent: list[str] = []
    waiting = store.waiting(ctx.db)
    for i, kept in enumerate(waiting):
        try:
            files = dict(kept.files)
            if not _has_card(hub, kept.repo):
                files[CARD_PATH] = dataset_card(kept.repo).encode()
            count = sum(data.count(b"\n") for data in kept.files.values())
            address = hub.open_pull_request(
                kept.repo,
                files,
                f"{count} result record(s) from localopen",
                "Measured with localopen (llama-bench's protocol). Records follow the schema in the dataset card.",
            )
        except HubError as exc:  # offline, or refused: kept, and sent with the next share
            log.info("Index submission %s kept: %s", kept.id, exc)
            return Published(sent, len(waiting) - i, str(exc), offline=isinstance(exc, OfflineError))
        store.mark_sent(ctx.db, kept.id, address)
        sent.append(address)
    return Published(sent, 0)


def _has_card(hub: Hub, repo: str) -> bool:
    """Whether the dataset already has its card (the first contribution brings it)."""
    try:
        return any(path == CARD_PATH for path, _, _ in hub.dataset_folder(repo, ""))
    except NotFoundError:
        return False
