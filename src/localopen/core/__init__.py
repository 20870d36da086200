"""Pure-Python core: no Qt, no llama_cpp (tests/test_layers.py checks it)."""
