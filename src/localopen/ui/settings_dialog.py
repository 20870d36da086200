"""Settings: models folder, defaults, downloads, offline mode, verdict thresholds, Hub token."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from localopen.app.settings import SettingError, parse_value, save_hub_token
from localopen.core.estimate.verdict import Thresholds
from localopen.ui.services import Services
from localopen.ui.widgets import kv_cache_box


class SettingsDialog(QDialog):
    def __init__(self, services: Services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.services = services
        s = services.ctx.settings
        self.models_dir = QLineEdit(str(services.ctx.models_dir))
        self.models_dir.setAccessibleName("Models folder")
        browse = QPushButton("Choose…")
        browse.setAccessibleName("Choose the models folder")
        browse.clicked.connect(self._browse)
        folder = QHBoxLayout()
        folder.addWidget(self.models_dir, 1)
        folder.addWidget(browse)
        self.threads = QSpinBox(minimum=0, maximum=256, value=s.n_threads)
        self.threads.setAccessibleName("Default threads (0 = physical cores)")
        self.ctx = QSpinBox(minimum=256, maximum=1 << 20, value=s.n_ctx, singleStep=1024)
        self.ctx.setAccessibleName("Default context size")
        self.ngl = QSpinBox(minimum=-1, maximum=999, value=s.n_gpu_layers)
        self.ngl.setAccessibleName("Default GPU layers (-1 = all)")
        self.kv_type = kv_cache_box(s.kv_cache_type, "Default KV-cache type")
        self.flash_attn = QCheckBox("Flash attention (a quantized V cache needs it)")
        self.flash_attn.setAccessibleName("Flash attention by default")
        self.flash_attn.setChecked(s.flash_attn)
        self.parallel = QSpinBox(minimum=1, maximum=8, value=s.max_parallel_downloads)
        self.parallel.setAccessibleName("Downloads at a time")
        self.offline = QCheckBox("Work offline (no request to the Hub at all)")
        self.offline.setAccessibleName("Offline mode")
        self.offline.setChecked(s.offline)
        t = s.thresholds
        self.thresholds = {}
        for key, label in (
            ("fluent_tps", "Fluent: at least tokens/s"),
            ("fluent_ttft_s", "Fluent: first token within s"),
            ("comfortable_tps", "Comfortable: tokens/s"),
            ("comfortable_ttft_s", "Comfortable: s"),
            ("readable_tps", "Readable: tokens/s"),
            ("readable_ttft_s", "Readable: s"),
        ):
            box = QDoubleSpinBox(minimum=0, maximum=10000, decimals=1, value=getattr(t, key))
            box.setAccessibleName(label)
            self.thresholds[key] = (label, box)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setAccessibleName("Hugging Face token")
        self.token.setPlaceholderText("hf_… (kept where huggingface_hub keeps its login; never shown)")
        form = QFormLayout()
        form.addRow("Models folder", folder)
        form.addRow("Default threads", self.threads)
        form.addRow("Default context", self.ctx)
        form.addRow("Default GPU layers", self.ngl)
        form.addRow("Default KV cache", self.kv_type)
        form.addRow("", self.flash_attn)
        form.addRow("Downloads at a time", self.parallel)
        form.addRow("", self.offline)
        self.calibrate = QCheckBox("Calibrate this machine once per llama.cpp version (1-2 minutes, in the background)")
        self.calibrate.setAccessibleName("Calibrate automatically")
        self.calibrate.setToolTip("Predicted speeds use it; without it they are a rough share of memory bandwidth")
        self.calibrate.setChecked(s.calibrate_automatically)
        form.addRow("", self.calibrate)
        for label, box in self.thresholds.values():
            form.addRow(label, box)
        form.addRow("Hugging Face token", self.token)
        self.index_repo = QLineEdit(s.index_repo)
        self.index_repo.setAccessibleName("The open usability index's Hub dataset")
        self.index_repo.setToolTip(
            "Where Compare's Share… sends a pull request, and where verdicts read others' results"
        )
        form.addRow("Open index dataset", self.index_repo)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Models folder", self.models_dir.text())
        if folder:
            self.models_dir.setText(folder)

    def accept(self) -> None:
        try:
            index_repo = parse_value("index_repo", self.index_repo.text(), "")
        except SettingError as exc:
            self.note.setText(str(exc))
            return
        folder = self.models_dir.text().strip()
        settings = dataclasses.replace(
            self.services.ctx.settings,
            models_dir=folder if folder and folder != str(self.services.ctx.paths.default_models_dir) else None,
            n_threads=self.threads.value(),
            n_ctx=self.ctx.value(),
            n_gpu_layers=self.ngl.value(),
            kv_cache_type=self.kv_type.currentData(),
            flash_attn=self.flash_attn.isChecked(),
            max_parallel_downloads=self.parallel.value(),
            offline=self.offline.isChecked(),
            calibrate_automatically=self.calibrate.isChecked(),
            thresholds=Thresholds(**{k: box.value() for k, (_, box) in self.thresholds.items()}),
            index_repo=index_repo,
        )
        if self.token.text().strip():
            save_hub_token(self.token.text())
            self.token.clear()
        self.services.save_settings(settings)
        super().accept()
