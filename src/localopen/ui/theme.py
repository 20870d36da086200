"""Light or dark, as the system says (Qt 6's colour scheme), and colours that stay readable in both.

Qt's platform themes (GNOME, KDE, Windows, macOS) give a dark palette when the system is dark; where
none does (a bare X11 session, Fusion), the app sets Fusion's colours for the scheme itself. The
grade and verdict colours have a light and a dark set, each at WCAG AA contrast (4.5:1) on the
palette's base colour: tests/test_ui.py measures it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

_GRADES = {
    "light": {"A": "#2e7d32", "B": "#4a7a1f", "C": "#1565c0", "D": "#b34700", "E": "#c62828", "?": "#616161"},
    "dark": {"A": "#81c784", "B": "#aed581", "C": "#64b5f6", "D": "#ffb74d", "E": "#ef9a9a", "?": "#bdbdbd"},
}
_BANDS = {
    "light": {"fluent": "#2e7d32", "comfortable": "#4a7a1f", "readable": "#b34700", "bad": "#c62828"},
    "dark": {"fluent": "#81c784", "comfortable": "#aed581", "readable": "#ffb74d", "bad": "#ef9a9a"},
}
_MUTED = {"light": "#616161", "dark": "#bdbdbd"}


_forced: Qt.ColorScheme | None = None  # the scheme last applied


def is_dark() -> bool:
    """Whether the window's colours are dark now (the scheme applied, or the palette in use)."""
    app = QGuiApplication.instance()
    if app is None:
        return False
    if Qt.ColorScheme.Dark in (_forced, QGuiApplication.styleHints().colorScheme()):
        return True
    return QGuiApplication.palette().color(QPalette.ColorRole.Base).lightness() < 128


def _set() -> str:
    return "dark" if is_dark() else "light"


def grade_colour(letter: str) -> str:
    return _GRADES[_set()].get(letter, _MUTED[_set()])


def band_colour(band: str) -> str:
    colours = _BANDS[_set()]
    return colours.get(band, colours["bad"] if band in ("too slow", "does not fit", "damaged") else _MUTED[_set()])


def muted_colour() -> str:
    return _MUTED[_set()]


def dark_palette() -> QPalette:
    """Fusion's colours for a dark scheme, where no platform theme provides them."""
    p = QPalette()
    window, base, text = QColor("#2b2b2b"), QColor("#1e1e1e"), QColor("#e6e6e6")
    for role, colour in (
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, QColor("#262626")),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, QColor("#353535")),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.ToolTipBase, QColor("#3a3a3a")),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.Highlight, QColor("#2f65ca")),
        (QPalette.ColorRole.HighlightedText, QColor("#ffffff")),
        (QPalette.ColorRole.Link, QColor("#8ab4f8")),
        (QPalette.ColorRole.PlaceholderText, QColor("#9e9e9e")),
    ):
        p.setColor(role, colour)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    return p


def apply_scheme(app: QGuiApplication, scheme: Qt.ColorScheme) -> None:
    """Dark colours for a dark scheme where the style has none of its own, the style's own otherwise."""
    global _forced
    _forced = scheme if scheme != Qt.ColorScheme.Unknown else None
    style_dark = app.palette().color(QPalette.ColorRole.Base).lightness() < 128
    if scheme == Qt.ColorScheme.Dark and not style_dark:
        app.setPalette(dark_palette())
    elif scheme != Qt.ColorScheme.Dark and style_dark:
        app.setPalette(app.style().standardPalette())  # type: ignore[attr-defined]


def follow_system(app: QGuiApplication) -> None:
    """Apply the system's scheme now and whenever it changes (a platform theme that knows none, as
    a bare X11 session, leaves the style's colours)."""
    scheme = app.styleHints().colorScheme()
    if scheme != Qt.ColorScheme.Unknown:
        apply_scheme(app, scheme)
    app.styleHints().colorSchemeChanged.connect(lambda changed: apply_scheme(app, changed))


def contrast(foreground: str | QColor, background: str | QColor) -> float:
    """WCAG's contrast ratio of two colours (1 to 21)."""

    def luminance(colour: QColor) -> float:
        def channel(value: float) -> float:
            return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

        return 0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF()) + 0.0722 * channel(colour.blueF())

    a, b = luminance(QColor(foreground)), luminance(QColor(background))
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)
