"""llama.cpp's CPU kernels on this machine, in words, for every face (This machine, `localopen hw`,
diagnostics): what the kernel canary (engine/canary.py) chose, and why when a kernel crashes."""

from __future__ import annotations

from localopen.engine.canary import kernel_choice


def in_words() -> str:
    """One line: the extra kernels models load with here, and the sentence when one crashes."""
    choice = kernel_choice()
    if choice is None:
        return "not chosen: the canary could not decode with llama.cpp's plain CPU kernels (the log says why)"
    build = f" of its {choice.variant} CPU build" if choice.variant else ""
    sentence = choice.sentence()
    said = f". {sentence}" if sentence else ""
    if not choice.offered:
        return f"plain CPU kernels{build} (this llama.cpp build offers no others on this CPU){said}"
    used = " and ".join(choice.working) if choice.working else "plain CPU kernels only"
    return f"{used}{build} (each decoded a test model here){said}"
