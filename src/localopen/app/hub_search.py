"""Hub search with provisional grades: GGUF repositories outside the catalog, graded from their
model cards alone (the lineage rule reaches through bases the catalog knows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localopen.app.context import AppContext
from localopen.app.grading import grade_card
from localopen.core.hub import quant_of
from localopen.core.openness import Grade


@dataclass
class HubResult:
    repo: str
    grade: Grade  # provisional
    quants: list[str]  # quantizations offered as .gguf files
    downloads: int | None
    likes: int | None
    last_modified: str | None
    info: dict[str, Any]  # model_info as JSON-like data

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.repo,
            "downloads": self.downloads,
            "likes": self.likes,
            "last_modified": self.last_modified,
            "quants": self.quants,
            **self.grade.to_dict(),
        }


def search_hub(ctx: AppContext, query: str, sort: str = "downloads", limit: int = 20) -> list[HubResult]:
    """Raises HubError (OfflineError when offline) in plain words."""
    results = []
    for info in ctx.hub().search(query, sort=sort, limit=limit):
        quants = sorted({q for f in info["files"] if f.endswith(".gguf") and (q := quant_of(f))})
        results.append(
            HubResult(
                info["id"],
                grade_card(ctx, info)[1],
                quants,
                info.get("downloads"),
                info.get("likes"),
                info.get("lastModified"),
                info,
            )
        )
    return results
