"""`localopen refresh --audit`: every catalog entry checked against its repository on the Hub
(core/openness/audit), and, where asked, the catalog written back with what the Hub showed as
each entry's files_seen: so anyone with a connection can check the catalog's truth."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localopen.app.context import AppContext
from localopen.core.hub.client import HubError, OfflineError, RepoFacts
from localopen.core.openness.audit import Audit, Drift, audit_entry, seen_record
from localopen.core.openness.catalog import CatalogError, catalog_from_data, read_catalog_data

log = logging.getLogger("localopen.app.catalog_audit")


def read_catalog(path: Path | None) -> dict[str, Any]:
    """The catalog's JSON as written (the built-in one without a path), checked as the app loads it."""
    data, where = read_catalog_data(path)
    catalog_from_data(data, where)  # CatalogError in words when malformed
    return data


def audit(
    ctx: AppContext, data: dict[str, Any], on_entry: Callable[[str, list[Drift]], None] | None = None
) -> tuple[Audit, dict[str, RepoFacts]]:
    """Each entry against its repository: the drifts, and what the Hub said of each repository that
    answered. OfflineError when the Hub cannot be reached at all (no point asking for the others)."""
    hub = ctx.hub()
    result = Audit()
    facts_by_repo: dict[str, RepoFacts] = {}
    for raw in data["models"]:
        repo = raw["gguf_repo"]
        try:
            facts = facts_by_repo.get(repo) or hub.repo_facts(repo)
        except OfflineError:
            raise
        except HubError as exc:
            drifts = [Drift(raw["id"], "unreachable", str(exc))]
        else:
            facts_by_repo[repo] = facts
            result.checked += 1
            drifts = audit_entry(raw, facts)
        result.drifts.extend(drifts)
        if on_entry is not None:
            on_entry(raw["id"], drifts)
    return result, facts_by_repo


def write_seen(data: dict[str, Any], facts_by_repo: dict[str, RepoFacts], out: Path) -> int:
    """The catalog with each answered entry's files_seen as the Hub shows it, written to `out`
    (checked first, never half-written: a temporary file renamed); how many entries were updated."""
    today = dt.date.today().isoformat()
    updated = 0
    for raw in data["models"]:
        facts = facts_by_repo.get(raw["gguf_repo"])
        if facts is not None:
            raw["files_seen"] = seen_record(raw, facts, today)
            updated += 1
    catalog_from_data(data, str(out))  # it must load as the app loads it, or nothing is written
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"  # as resources/catalog.json is laid out
    tmp = out.with_name(out.name + ".part")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise CatalogError(f"Cannot write {out}: {exc.strerror or exc}.") from exc
    finally:
        tmp.unlink(missing_ok=True)
    log.info("files_seen of %d entries written to %s", updated, out)
    return updated
