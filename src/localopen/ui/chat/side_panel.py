"""The conversation's settings beside it: the system prompt, then (under Advanced, closed until
opened) sampling, how the model loads (its preset's values unless changed here) and drafting;
thinking for a model that can be told not to, tools, and how much of the context the conversation
uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from localopen.app import engine_options
from localopen.app.context import AppContext
from localopen.app.conversation import drafting
from localopen.core.estimate.memory import KV_TYPES
from localopen.core.options import LoadOptions, SamplingParams, values_of
from localopen.core.records import LoadInfo
from localopen.ui import theme
from localopen.ui.background import run_in_background
from localopen.ui.chat_tools import ChatTools
from localopen.ui.widgets import button, dspin, kv_cache_box, spin

ADVANCED_OPEN = "chat/advanced-open"  # whether the person left Advanced open


class ChatSettingsPanel(QWidget):
    save_preset = Signal()

    def __init__(self, ctx: AppContext, tools: ChatTools) -> None:
        super().__init__()
        self.ctx, self.tools = ctx, tools
        s = ctx.settings
        self.system = QPlainTextEdit()
        self.system.setAccessibleName("System prompt")
        self.system.setPlaceholderText("System prompt (optional)")
        self.system.setMaximumHeight(90)
        d = engine_options.sampling()  # the one set of sampling defaults
        self.temperature = dspin(0, 2, d.temperature, "Temperature")
        self.top_p = dspin(0, 1, d.top_p, "Top-p")
        self.top_k = spin(0, 1000, d.top_k, "Top-k")
        self.min_p = dspin(0, 1, d.min_p, "Min-p")
        self.repeat = dspin(0.5, 2, d.repeat_penalty, "Repeat penalty")
        self.max_tokens = spin(1, 32768, d.max_tokens, "Max tokens")
        self.n_ctx = spin(256, 1 << 20, s.n_ctx, "Context size")
        self.threads = spin(0, 256, s.n_threads, "Threads (0 = automatic)")
        self.gpu_layers = spin(-1, 999, s.n_gpu_layers, "GPU layers (-1 = all)")
        self.kv_type = kv_cache_box(s.kv_cache_type, "KV-cache type")
        self.flash_attn = QCheckBox("Flash attention")
        self.flash_attn.setAccessibleName("Flash attention")
        self.flash_attn.setToolTip("Smaller compute buffers; a quantized V cache needs it")
        self.flash_attn.setChecked(s.flash_attn)
        self.draft_box = QComboBox()
        self.draft_box.setAccessibleName("Drafting")
        self.draft_box.setToolTip(
            "Speculative decoding: tokens drafted cheaply and checked in one batch; at temperature 0 the same "
            "text but where two tokens nearly tie. Prompt lookup helps when answers repeat the conversation "
            "(quoting, editing code); a draft model (a small one of the same family) helps in general."
        )
        self._drafts_for: str | None = None
        self.fill_drafts(None)
        self.preset_button = button(
            "Save as this model's preset",
            "Save the context, KV cache, flash attention, threads, GPU layers and drafting as this model's preset",
            self.save_preset.emit,
        )
        self.thinking = QCheckBox("Think before answering")
        self.thinking.setAccessibleName("Thinking")
        self.thinking.setChecked(True)
        self.context_meter = QProgressBar()
        self.context_meter.setAccessibleName("Context used")
        self.context_meter.setFormat("context %p%")
        self.loads_with = QLabel("")
        self.loads_with.setAccessibleName("How the model loads")
        self.loads_with.setWordWrap(True)
        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced: sampling, context, threads, drafting")
        self.advanced_button.setAccessibleName("Advanced settings")
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setAutoRaise(True)
        self.advanced_button.setCheckable(True)
        self.advanced_button.toggled.connect(self._show_advanced)

        top = QFormLayout()
        top.addRow("System prompt", self.system)
        self.advanced = QWidget()
        advanced = QFormLayout(self.advanced)
        advanced.setContentsMargins(0, 0, 0, 0)
        for label, w in (
            ("Temperature", self.temperature),
            ("Top-p", self.top_p),
            ("Top-k", self.top_k),
            ("Min-p", self.min_p),
            ("Repeat penalty", self.repeat),
            ("Max tokens", self.max_tokens),
            ("Context", self.n_ctx),
            ("Threads", self.threads),
            ("GPU layers", self.gpu_layers),
            ("KV cache", self.kv_type),
            ("", self.flash_attn),
            ("Drafting", self.draft_box),
            ("", self.preset_button),
        ):
            advanced.addRow(label, w)
        self.bottom = QFormLayout()
        self.bottom.addRow("Thinking", self.thinking)
        self.bottom.addRow("Tools", tools)
        self.bottom.addRow("Context used", self.context_meter)
        self.bottom.setRowVisible(self.thinking, False)  # until a model that can be told not to think loads
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.advanced_button)
        layout.addWidget(self.loads_with)
        layout.addWidget(self.advanced)
        layout.addLayout(self.bottom)
        layout.addStretch(1)
        self.advanced_button.setChecked(bool(QSettings().value(ADVANCED_OPEN, False, type=bool)))
        self._show_advanced(self.advanced_button.isChecked())

    def _show_advanced(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        QSettings().setValue(ADVANCED_OPEN, on)

    # -- a conversation's settings ------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """What a conversation keeps of these controls."""
        return {
            "system": self.system.toPlainText(),
            "temperature": self.temperature.value(),
            "top_p": self.top_p.value(),
            "top_k": self.top_k.value(),
            "min_p": self.min_p.value(),
            "repeat_penalty": self.repeat.value(),
            "max_tokens": self.max_tokens.value(),
            **self.load_values(),
            "thinking": self.thinking.isChecked(),
        }

    def apply(self, st: dict[str, Any]) -> None:
        self.system.setPlainText(st.get("system", ""))
        for key, w in (
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("top_k", self.top_k),
            ("min_p", self.min_p),
            ("repeat_penalty", self.repeat),
            ("max_tokens", self.max_tokens),
            ("n_ctx", self.n_ctx),
            ("n_threads", self.threads),
            ("n_gpu_layers", self.gpu_layers),
        ):
            if key in st:
                w.setValue(st[key])
        self.thinking.setChecked(bool(st.get("thinking", True)))
        if st.get("kv_cache_type") in KV_TYPES:
            self.kv_type.setCurrentIndex(self.kv_type.findData(st["kv_cache_type"]))
        if "flash_attn" in st:
            self.flash_attn.setChecked(bool(st["flash_attn"]))
        if self.draft_box.findData(st.get("draft")) >= 0:
            self.draft_box.setCurrentIndex(self.draft_box.findData(st.get("draft")))

    def sampling(self) -> SamplingParams:
        return engine_options.sampling(
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            top_k=self.top_k.value(),
            min_p=self.min_p.value(),
            repeat_penalty=self.repeat.value(),
            max_tokens=self.max_tokens.value(),
        )

    # -- how the model loads ------------------------------------------------------------------
    def load_values(self) -> dict[str, Any]:
        """The load controls, by option key (what a preset saves, what a load is asked for)."""
        return {
            "n_ctx": self.n_ctx.value(),
            "n_threads": self.threads.value(),
            "n_gpu_layers": self.gpu_layers.value(),
            "kv_cache_type": self.kv_type.currentData(),
            "flash_attn": self.flash_attn.isChecked(),
            "draft": self.draft_box.currentData(),
        }

    def show_options(self, path: str | None, options: LoadOptions, preset: str | None = None) -> None:
        """A model's load options (its preset over the settings) in the load controls, and whose
        they are said above them."""
        values = values_of(options)
        muted = theme.muted_colour()
        if path:
            whose = f"the preset “{preset}”" if preset else "the app's settings (no preset for this model)"
            self.loads_with.setText(f"<small style='color:{muted}'>Loads with {whose}.</small>")
        else:
            self.loads_with.setText("")
        self.n_ctx.setValue(values["n_ctx"])
        self.threads.setValue(values["n_threads"])
        self.gpu_layers.setValue(values["n_gpu_layers"])
        self.kv_type.setCurrentIndex(self.kv_type.findData(values["kv_cache_type"]))
        self.flash_attn.setChecked(values["flash_attn"])
        self.fill_drafts(path, values["draft"])

    def fill_drafts(self, path: str | None, chosen: str | None = None) -> None:
        """Off, prompt lookup and the chosen draft model at once; the installed models that could
        draft for the model at path join the list from a background read of their headers."""
        self._drafts_for = path
        self.draft_box.clear()
        self.draft_box.addItem("Off", "off")
        self.draft_box.addItem("Prompt lookup", "lookup")
        if chosen not in (None, "off", "lookup"):
            self.draft_box.addItem(f"Draft model: {Path(str(chosen)).stem}", chosen)
        self.draft_box.setCurrentIndex(max(0, self.draft_box.findData(chosen or "off")))
        if path:
            ctx = self.ctx
            run_in_background(
                lambda: drafting.candidates(ctx, path),
                lambda found: self._add_drafts(path, found),
                name="draft-candidates",
                owner=self,
            )

    def _add_drafts(self, path: str, found: list[drafting.DraftCandidate]) -> None:
        if path != self._drafts_for:
            return  # another model was chosen meanwhile
        for candidate in found:
            if self.draft_box.findData(str(candidate.path)) < 0:
                self.draft_box.addItem(f"Draft model: {candidate.name}", str(candidate.path))

    def show_thinking_switch(self, info: LoadInfo | None) -> None:
        """Thinking on or off, only for a loaded model whose template can be told (a reasoning model
        without a switch still shows its thinking apart from its answer)."""
        switch = info.thinking_switch if info is not None else None
        self.bottom.setRowVisible(self.thinking, switch is not None)
        if switch:
            self.thinking.setToolTip(
                f"This model's chat template turns thinking on or off ({switch}). Off: faster answers "
                "without the reasoning."
            )
