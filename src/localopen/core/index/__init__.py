"""The open usability index: measured results shared as an open dataset (layout, trust, likeness)."""
