"""localopen: a desktop explorer of open language models."""

__version__ = "0.1.0"
