"""Reports: the one-page summary, benchmark output formats, llama-bench's statistics."""
