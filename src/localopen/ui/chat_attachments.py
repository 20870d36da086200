"""The pictures attached to the message being written: thumbnails above the input, each with a
button that takes it off; added by the Attach button, by dropping files or by pasting."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QToolButton, QWidget

from localopen.app.conversation import vision
from localopen.core.errors import LocalopenError

THUMBNAIL = 64
IMAGE_FILTER = "Pictures (*.png *.jpg *.jpeg *.gif *.bmp)"


def thumbnail(data: bytes, side: int = THUMBNAIL) -> QPixmap:
    image = QImage.fromData(QByteArray(data))
    return QPixmap.fromImage(image).scaled(
        side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )


def pictures_in(mime: QMimeData) -> list[bytes | Path]:
    """The pictures a drop or a paste carries: image files by their paths (read when attached), or
    an image itself (a screenshot pasted) encoded as PNG."""
    found: list[bytes | Path] = []
    for url in mime.urls() if mime.hasUrls() else []:
        path = Path(url.toLocalFile())
        if path.is_file() and path.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".bmp"):
            found.append(path)
    if not found and mime.hasImage():
        image = mime.imageData()
        if isinstance(image, QImage) and not image.isNull():
            buffer = QByteArray()
            device = QBuffer(buffer)
            device.open(QIODevice.OpenModeFlag.WriteOnly)
            image.save(device, b"PNG")
            found.append(bytes(buffer.data()))
    return found


class Attachments(QWidget):
    changed = Signal()
    refused = Signal(str)  # a file that is not a picture, or one too many, in words

    def __init__(self) -> None:
        super().__init__()
        self.pictures: list[bytes] = []
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.addStretch(1)
        self.setAccessibleName("Attached pictures")
        self.hide()

    def choose(self) -> None:
        """The Attach button: pick picture files."""
        files, _ = QFileDialog.getOpenFileNames(self, "Attach pictures", "", IMAGE_FILTER)
        self.add_all([Path(name) for name in files])

    def add_all(self, found: list[bytes | Path]) -> None:
        """Pictures by their bytes, or files read now (one that cannot be read is said in words)."""
        for item in found:
            if isinstance(item, Path):
                try:
                    data = vision.read_image(item)["data"]
                except LocalopenError as exc:
                    self.refused.emit(str(exc))
                    continue
                assert isinstance(data, bytes)
                self.add(data)
            else:
                self.add(item)

    def add(self, data: bytes) -> None:
        try:
            vision.image_part(data, "This file")
        except LocalopenError as exc:
            self.refused.emit(str(exc))
            return
        if len(self.pictures) >= vision.MAX_IMAGES:
            self.refused.emit(f"At most {vision.MAX_IMAGES} pictures go with one message.")
            return
        self.pictures.append(data)
        self._show()

    def take(self) -> list[bytes]:
        """The pictures, handed over with the message; the strip empties."""
        taken, self.pictures = self.pictures, []
        self._show()
        return taken

    def remove(self, index: int) -> None:
        del self.pictures[index]
        self._show()

    def _show(self) -> None:
        while self.row.count() > 1:
            item = self.row.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        for i, data in enumerate(self.pictures):
            tile = QToolButton()
            tile.setIcon(QIcon(thumbnail(data)))
            tile.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
            tile.setToolTip("Click to take this picture off the message")
            tile.setAccessibleName(f"Attached picture {i + 1} (click to remove)")
            tile.clicked.connect(lambda _=False, i=i: self.remove(i))
            self.row.insertWidget(i, tile)
        self.row.insertWidget(len(self.pictures), QLabel(f"{len(self.pictures)} picture(s)" if self.pictures else ""))
        self.setVisible(bool(self.pictures))
        self.changed.emit()
