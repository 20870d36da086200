"""GGUF files: the header reader, zero-data writer, model shapes and quantization types."""
