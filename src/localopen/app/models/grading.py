"""Grades of models outside the catalog, from what the Hub's model card says (provisional)."""

from __future__ import annotations

from typing import Any

from localopen.app.context import AppContext
from localopen.core.openness.grade import Evidence, Grade, evidence_from_card, grade


def grade_card(ctx: AppContext, info: dict[str, Any]) -> tuple[Evidence, Grade]:
    """model_info data as JSON: the lineage rule reaches through every base the catalog knows."""
    evidence = evidence_from_card(info, ctx.catalog.evidence_by_repo())
    return evidence, grade(evidence, provisional=True)
