"""llama.cpp's CPU kernels on this machine, in words, for every face (This machine, `localopen hw`,
diagnostics): what the kernel canary (engine/canary.py) chose, and why when a kernel crashes."""

from __future__ import annotations

from localopen.engine.canary import kernel_choice


def in_words() -> str:
    """One line: the extra kernels models load with here, and the sentence when one crashes."""
    choice = kernel_choice()
    if choice is None:
        return "not chosen: the canary could not decode with llama.cpp's plain CPU kernels (the log says why)"
    if not choice.offered:
        return "plain CPU kernels (this llama.cpp build offers no others on this CPU)"
    used = " and ".join(choice.working) if choice.working else "plain CPU kernels only"
    sentence = choice.sentence()
    return f"{used} (each decoded a test model here)" + (f". {sentence}" if sentence else "")
