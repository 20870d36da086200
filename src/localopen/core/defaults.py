"""Defaults every layer shares, written once."""

from __future__ import annotations

DEFAULT_CTX = 4096  # tokens: the context a model loads and is fitted with unless settings or a preset say otherwise
