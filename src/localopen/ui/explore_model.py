"""Explore's table: catalog models and Hub search results, with grade, fit and verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor

from localopen.app.conversation.capabilities import Capabilities
from localopen.core.estimate.memory import FitVerdict, human_bytes
from localopen.core.estimate.verdict import Verdict
from localopen.core.gguf.files import is_projector_name
from localopen.core.openness.catalog import CatalogModel
from localopen.core.openness.grade import Grade
from localopen.ui import theme

# The product's question first: how open, usable here, does it fit, what can it do; then the details.
COLUMNS = [
    "Model",
    "Openness",
    "Usable here",
    "Fit here",
    "Can",
    "Size",
    "Parameters",
    "Licence",
    "Family",
    "Installed",
]
KEYS = ["model", "openness", "usable", "fit", "can", "size", "params", "licence", "family", "installed"]
OPENNESS_COLUMN = KEYS.index("openness")
ALWAYS_SHOWN = KEYS.index("usable")  # the model, its openness and whether it is usable here show at any width
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2


# What a model that does not chat can do, in a table cell (the catalog's kind says).
KIND_SHORT = {"base": "completion only", "embedding": "embeddings"}


@dataclass
class ExploreRow:
    key: str  # catalog id or Hub repo
    repo: str
    family: str
    params_b: float | None
    grade: Grade
    size_bytes: int | None
    size_estimate: bool
    source: str  # catalog | hub
    catalog: CatalogModel | None = None
    hub_info: dict[str, Any] | None = None
    fit: FitVerdict | None = None
    verdict: Verdict | None = None
    installed: bool = False
    quants: list[str] = field(default_factory=list)
    capabilities: Capabilities | None = None  # from an installed file's or a probed header's template

    @property
    def sees_images(self) -> bool:
        """Its projector is installed beside it, or the catalog says the repository publishes one."""
        installed = self.capabilities is not None and self.capabilities.vision is not None
        published = self.hub_info is not None and any(is_projector_name(f) for f in self.hub_info.get("files", []))
        return installed or published or (self.catalog is not None and self.catalog.vision is not None)


class ExploreModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[ExploreRow] = []

    def set_rows(self, rows: list[ExploreRow]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = KEYS[index.column()]
        if role == ROW_ROLE:
            return row
        if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE, Qt.ItemDataRole.AccessibleTextRole):
            return self._value(row, col, sort=role == SORT_ROLE)
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == "openness":
                return QColor(theme.grade_colour(row.grade.letter))
            if col == "usable" and row.verdict and not row.verdict.predicted:
                return QColor(theme.band_colour(row.verdict.band))
            if col == "usable" and row.verdict:
                return QColor(theme.muted_colour())
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == "openness":
                tip = f"{row.grade.letter} — {row.grade.label}\n" + "\n".join(row.grade.explanation)
                return tip + ("\n(provisional: some facts not verified)" if row.grade.provisional else "")
            if col == "fit" and row.fit:
                return row.fit.detail
            if col == "usable" and row.verdict:
                return row.verdict.reason
            if col == "size":
                return (
                    "Estimated: parameters × bits per weight"
                    if row.size_estimate
                    else "Exact size (from the Hub, or as the catalog recorded it)"
                )
            if col == "can":
                caps = row.capabilities
                if row.catalog is not None and row.catalog.kind_words:
                    return row.catalog.kind_words
                if caps is None:
                    return "Known once a file is installed or probed here (its chat template says)"
                return f"{caps.reasoning or 'no reasoning'}; {caps.tools_label} (from the {caps.basis})"
        return None

    @staticmethod
    def _value(row: ExploreRow, col: str, sort: bool) -> Any:
        g = row.grade
        if col == "model":
            return row.key
        if col == "family":
            return row.family
        if col == "params":
            if sort:
                return row.params_b or 0.0
            return f"{row.params_b}B" if row.params_b else "–"
        if col == "licence":
            return g.rights.license_key or "none"
        if col == "openness":
            if sort:
                return "ABCDE?".index(g.letter) * 10 - g.transparency
            return g.badge + (" *" if g.provisional else "")
        if col == "size":
            if sort:
                return row.size_bytes or 0
            return ("~" if row.size_estimate else "") + human_bytes(row.size_bytes) if row.size_bytes else "–"
        if col == "fit":
            if sort:
                return row.fit.memory.total if row.fit else 0
            return row.fit.label if row.fit else ("reading this machine…" if row.source == "catalog" else "–")
        if col == "usable":
            if sort:
                order = ["fluent", "comfortable", "readable", "too slow", "does not fit", "damaged", "unknown"]
                return order.index(row.verdict.band) if row.verdict and row.verdict.band in order else 9
            return row.verdict.label if row.verdict else ""
        if col == "installed":
            return ("yes" if row.installed else "") if not sort else int(row.installed)
        if col == "can":
            said = row.capabilities.short if row.capabilities else ""
            kind = row.catalog.kind if row.catalog is not None else "chat"
            if kind != "chat" and not said:
                said = KIND_SHORT[kind]
            if row.sees_images and "images" not in said:
                said = f"{said} · images" if said else "images"
            return said or ("" if sort else "?")
        return None


class ExploreFilter(QSortFilterProxyModel):
    """Text, grade, 'fits this machine', size range (GB) and 'installed' filters."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.text = ""
        self.grades: set[str] = set("ABCDE?")
        self.fits_only = False
        self.installed_only = False
        self.min_size_gb: float | None = None
        self.max_size_gb: float | None = None
        self.setSortRole(SORT_ROLE)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def update(self, **changes: Any) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.10+
            self.beginFilterChange()
        for key, value in changes.items():
            setattr(self, key, value)
        if hasattr(self, "endFilterChange"):
            self.endFilterChange()
        else:
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        model = self.sourceModel()
        assert isinstance(model, ExploreModel)
        row = model.rows[source_row]
        if row.grade.letter not in self.grades:
            return False
        if self.fits_only and not (row.fit and row.fit.code in ("fits_gpu", "fits_ram")):
            return False
        if self.installed_only and not row.installed:
            return False
        if self.max_size_gb is not None and row.size_bytes and row.size_bytes > self.max_size_gb * 1e9:
            return False
        if self.min_size_gb is not None and (not row.size_bytes or row.size_bytes < self.min_size_gb * 1e9):
            return False
        if self.text:
            needle = self.text.lower()
            hay = f"{row.key} {row.repo} {row.family} {row.grade.rights.license_key}".lower()
            return needle in hay
        return True
