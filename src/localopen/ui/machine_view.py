"""This machine: the hardware profile, the llama.cpp backend, and how to get GPU acceleration."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from localopen.core.estimate.memory import human_bytes
from localopen.core.machine.hardware import HardwareProfile
from localopen.ui.services import Services

GPU_HELP = (
    "<h3>GPU acceleration</h3><p>llama.cpp uses the GPU only if llama-cpp-python was built for it. "
    "Reinstall it with the backend you need, then restart localopen:</p>"
    '<pre>CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python   # NVIDIA\n'
    'CMAKE_ARGS="-DGGML_VULKAN=on" pip install --force-reinstall --no-cache-dir llama-cpp-python  # AMD, Intel, '
    "NVIDIA</pre><p>On Macs with Apple silicon, Metal is on by default. Then set <i>GPU layers</i> "
    "(-1 = all) in the settings or the chat panel.</p>"
)


class MachineView(QWidget):
    def __init__(self, services: Services) -> None:
        super().__init__()
        self.view = QTextBrowser()
        self.view.setAccessibleName("This machine")
        self.view.setOpenExternalLinks(True)
        self.view.setHtml("<p>Reading this machine…</p>")
        layout = QVBoxLayout(self)
        layout.addWidget(self.view)
        services.profile_ready.connect(self.show_profile)
        if services.profile:
            self.show_profile(services.profile)

    def show_profile(self, hw: HardwareProfile) -> None:
        e = html.escape
        rows = [
            ("Operating system", f"{hw.os} ({hw.arch})"),
            ("Processor", f"{hw.cpu_model}: {hw.cores_physical} physical / {hw.cores_logical} logical cores"),
            ("Instruction sets", ", ".join(hw.simd) or "none detected"),
            ("Memory", f"{human_bytes(hw.ram_total)} total, {human_bytes(hw.ram_available)} available"),
            ("Memory bandwidth", hw.bandwidth_words),
            ("Disk free", f"{human_bytes(hw.disk_free)} in {hw.models_dir}"),
        ]
        for g in hw.gpus:
            free = f", {human_bytes(g.memory_free)} free" if g.memory_free is not None else ""
            rows.append(("GPU", f"{g.name}: {human_bytes(g.memory_total)}{free}"))
        if not hw.gpus:
            rows.append(("GPU", "none detected"))
        rows.append(("llama.cpp backends", ", ".join(hw.llama_backends) or "llama-cpp-python is not installed"))
        rows.append(("GPU offload", "possible" if hw.gpu_offload_possible else "not possible with this build"))
        if hw.cpu_kernels:
            rows.append(("llama.cpp CPU kernels", hw.cpu_kernels))
        table = "".join(f"<tr><td><b>{e(k)}</b></td><td>{e(v)}</td></tr>" for k, v in rows)
        bound = ""
        if hw.bandwidth_gbs:
            bound = (
                f"<p>With {hw.bandwidth_gbs} GB/s, a 4 GB model can decode at most about "
                f"{hw.bandwidth_gbs / 4:.0f} tokens/s here, a 1 GB model about {hw.bandwidth_gbs:.0f}.</p>"
            )
        help_html = "" if hw.gpu_offload_possible else GPU_HELP
        self.view.setHtml(
            f"<h2>This machine</h2><table cellpadding=4>{table}</table>{bound}{help_html}"
            f"<p style='color:#777'>Machine id {e(hw.fingerprint)}</p>"
        )
