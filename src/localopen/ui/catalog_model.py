"""The catalog as a Qt table model: one row per model, fit verdicts once the profile is read."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from localopen.core.catalog import Catalog
from localopen.core.fit import FitVerdict, human_bytes
from localopen.core.hardware import HardwareProfile
from localopen.core.model_fit import catalog_fit

GRADE_COLOURS = {"A": "#2e7d32", "B": "#558b2f", "C": "#1565c0", "D": "#ef6c00", "E": "#c62828", "?": "#616161"}
COLUMNS = ["Model", "Family", "Parameters", "Licence", "Openness", "Size", "Fit here", "Decode bound"]
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


class CatalogTableModel(QAbstractTableModel):
    def __init__(self, catalog: Catalog, parent: Any = None) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.fits: list[FitVerdict | None] = [None] * len(catalog.models)

    def set_profile(self, hw: HardwareProfile) -> None:
        self.fits = [catalog_fit(m, hw) for m in self.catalog.models]
        self.dataChanged.emit(self.index(0, 6), self.index(self.rowCount() - 1, 7))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.catalog.models)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        m = self.catalog.models[index.row()]
        col, g, q, fit = index.column(), m.grade, m.recommended, self.fits[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
            sort = role == SORT_ROLE
            if col == 0:
                return m.id
            if col == 1:
                return m.family
            if col == 2:
                return m.raw["params_b"] if sort else f"{m.raw['params_b']}B"
            if col == 3:
                return g.rights.license_key or "none"
            if col == 4:
                return "ABCDE?".index(g.letter) * 10 - g.transparency if sort else (
                    g.badge + (" *" if g.provisional else ""))
            if col == 5:
                approx = "~" if q.size_is_estimate else ""
                return (q.size_bytes or 0) if sort else f"{q.type} {approx}{human_bytes(q.size_bytes)}"
            if col == 6:
                if sort:
                    return fit.memory.total if fit else 0
                return fit.label if fit else "reading this machine…"
            if col == 7:
                bound = fit.decode_bound_tps if fit else None
                return (bound or 0) if sort else (f"≤ {bound:.0f} tokens/s" if bound else "")
        if role == Qt.ItemDataRole.ForegroundRole and col == 4:
            return QColor(GRADE_COLOURS[g.letter])
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == 4:
                text = f"{g.letter}: {g.label}. " + " ".join(g.explanation)
                return text + (" (* provisional: some facts not yet verified)" if g.provisional else "")
            if col == 6 and fit:
                return fit.detail
            if col == 5:
                return "Estimated: parameters × bits per weight" if q.size_is_estimate else "Exact size from the Hub"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return str(self.data(index, Qt.ItemDataRole.DisplayRole))
        return None
