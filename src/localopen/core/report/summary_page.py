"""A one-page summary: which open models are usable systems on this machine, by openness grade."""

from __future__ import annotations

import html
from dataclasses import dataclass

from localopen.core.openness.grade import GRADE_LABELS


@dataclass
class SummaryRow:
    name: str
    grade: str
    transparency: int
    license: str
    verdict: str  # the band
    reason: str
    basis: str  # measured | probed | predicted
    can: str = "?"  # what it does as a system: reasoning, tools (measured N/5); ? before its template is known

    @property
    def predicted(self) -> bool:
        return self.basis == "predicted"


def _grouped(rows: list[SummaryRow]) -> list[tuple[str, list[SummaryRow]]]:
    order = "ABCDE?"
    groups = []
    for letter in order:
        members = sorted((r for r in rows if r.grade == letter), key=lambda r: (r.predicted, r.name))
        if members:
            groups.append((letter, members))
    return groups


def markdown(rows: list[SummaryRow], machine: str) -> str:
    lines = [
        "# Open models on this machine",
        "",
        f"Machine: {machine}",
        "",
        "Each verdict says how it was obtained: measured (a benchmark of the downloaded file, or a failed "
        "load, on this machine), probed (the Hub file's header benchmarked here as a zero-data replica, "
        "before any download) or predicted (the file's shape and this machine's calibration).",
        "",
    ]
    for letter, members in _grouped(rows):
        lines += [
            f"## {letter} — {GRADE_LABELS[letter]}",
            "",
            "| model | licence | verdict | can | why |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [f"| {r.name} | {r.license} | {r.verdict} ({r.basis}) | {r.can} | {r.reason} |" for r in members]
        lines.append("")
    return "\n".join(lines)


def to_html(rows: list[SummaryRow], machine: str) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Open models on this machine</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;"
        "width:100%}td,th{border-bottom:1px solid #ccc;padding:4px 8px;text-align:left}"
        ".p{color:#777}</style></head><body>",
        "<h1>Open models on this machine</h1>",
        f"<p>Machine: {e(machine)}</p>",
    ]
    for letter, members in _grouped(rows):
        parts.append(
            f"<h2>{letter} — {e(GRADE_LABELS[letter])}</h2><table>"
            "<tr><th>model</th><th>licence</th><th>verdict</th><th>can</th><th>why</th></tr>"
        )
        for r in members:
            cls = " class='p'" if r.predicted else ""
            parts.append(
                f"<tr{cls}><td>{e(r.name)}</td><td>{e(r.license)}</td><td>{e(r.verdict)}"
                f" ({e(r.basis)})</td><td>{e(r.can)}</td><td>{e(r.reason)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
