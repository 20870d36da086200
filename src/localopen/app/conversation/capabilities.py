"""What a model can do as a system, from its chat template and what was measured here: reasoning
(a thinking switch, or thinking it always does) and tools (whether its template offers them, the
call format localopen reads, and the measured agent check). Every face shows these same facts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localopen.app.context import AppContext
from localopen.app.conversation import agent_check, vision
from localopen.app.measure import probed_headers
from localopen.app.models import library
from localopen.app.usable.usable_here import MachineSnapshot
from localopen.core.chat import tool_calls
from localopen.core.chat.template import traits
from localopen.core.store.tool_checks import ToolCheck

_REASONING_MARKS = ("<think>", "reasoning_content", "<|channel|>", "<seed:think>", "<|START_THINKING|>", "[THINK]")


@dataclass(frozen=True)
class Capabilities:
    reasoning: str | None  # "thinking, switch: NAME" | "thinking" | None
    tools_format: str | None  # the call format; None: its template offers no tools
    tools_measured: ToolCheck | None = None
    basis: str = "template"  # template (an installed file's) | probed header (a Hub file's, before download)
    vision: str | None = None  # the projector beside it that pairs (its images are read); None: text only

    @property
    def tools(self) -> bool:
        """Offered by the template in a format localopen reads."""
        return self.tools_format is not None and self.tools_format != tool_calls.UNSUPPORTED

    @property
    def short(self) -> str:
        """For a table cell: what it can do, in a word or two."""
        parts = []
        if self.tools:
            parts.append(
                f"tools {self.tools_measured.passed}/{self.tools_measured.total}" if self.tools_measured else "tools"
            )
        if self.reasoning:
            parts.append("thinking")
        if self.vision:
            parts.append("images")
        return " · ".join(parts) or "chat"

    @property
    def tools_label(self) -> str:
        if self.tools_format is None:
            return "no tools"
        if not self.tools:
            return "tools in a format not read yet"
        measured = f", {self.tools_measured.label}" if self.tools_measured else ", not measured"
        return f"tools ({self.tools_format}{measured})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reasoning": self.reasoning,
            "tools": {
                "template": self.tools_format is not None,
                "format": self.tools_format,
                "measured": self.tools_measured.to_dict() if self.tools_measured else None,
            },
            "vision": {"projector": self.vision} if self.vision else None,
            "basis": self.basis,
        }


def of_template(source: str | None, basis: str = "template") -> Capabilities:
    t = traits(source)
    reasoning = None
    if t.thinking_switch:
        reasoning = f"thinking, switch: {t.thinking_switch}"
    elif source and any(mark in source for mark in _REASONING_MARKS):
        reasoning = "thinking"
    return Capabilities(reasoning, t.tool_format, None, basis)


def of_repo(ctx: AppContext, here: MachineSnapshot, repo: str) -> Capabilities | None:
    """A Hub repository's model, from its installed file's template, else from a probed header
    (before any download); None when neither is here (the catalog does not record templates)."""
    installed = here.installed.get(repo)
    if installed is not None and not installed.missing:
        # The header as the library read it (once per file version), not again at every refresh.
        readable, template = library.chat_template_of(ctx, installed.path)
        return of_file(ctx, installed.path, template) if readable else None
    for name in here.probed.get(repo, []):
        kept = probed_headers.recall(ctx, repo, name)
        if kept is not None:
            return of_template(kept.header.chat_template, basis="probed header")
    return None


def of_file(ctx: AppContext, path: Path, template: str | None) -> Capabilities:
    """An installed file's capabilities, with its newest agent check on this machine and the
    projector beside it (app/vision)."""
    found = of_template(template)
    projector = vision.pairing(path).projector
    measured = agent_check.latest(ctx, path) if found.tools else None
    return Capabilities(
        found.reasoning, found.tools_format, measured, found.basis, projector.name if projector else None
    )
