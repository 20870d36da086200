"""Estimates: memory fit, a file's features for the speed model, the speed model, the usable-here verdict."""
