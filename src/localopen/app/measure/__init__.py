"""Measuring here: benchmarks as llama-bench runs them, the machine's calibration, drafting's
speed-ups, tuning a model's settings, and probing a Hub file before any download."""
