"""llama.cpp, run in a separate worker process (llama_cpp is imported only here)."""
