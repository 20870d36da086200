"""The open usability index: sharing this machine's results (share) and reading others' (read)."""
