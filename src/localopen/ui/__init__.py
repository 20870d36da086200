"""The Qt face of localopen (PySide6 only here)."""
