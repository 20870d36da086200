"""What this machine has: CPU, SIMD features, memory, disk, GPUs, llama.cpp backends."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from localopen.core.machine import cpu_features
from localopen.core.machine.bandwidth import measure_bandwidth
from localopen.core.machine.load import OtherLoad, wait_calm

log = logging.getLogger("localopen.hardware")


def physical_cores() -> int:
    """This machine's physical cores: llama.cpp's default thread count, and what 0 threads means
    in the settings, presets and flags."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@dataclass
class GPU:
    name: str
    vendor: str
    memory_total: int  # bytes
    memory_free: int | None
    unified: bool = False  # Apple silicon: GPU shares system RAM


@dataclass
class HardwareProfile:
    os: str
    arch: str
    cpu_model: str
    cores_physical: int
    cores_logical: int
    simd: list[str]
    ram_total: int
    ram_available: int
    disk_free: int | None
    models_dir: str
    gpus: list[GPU] = field(default_factory=list)
    llama_backends: list[str] = field(default_factory=list)  # e.g. ["CPU", "CUDA"]
    bandwidth_gbs: float | None = None
    bandwidth_cached: bool = False
    bandwidth_busy: bool = False  # measured only while other programs kept the cores busy (reads low)
    bandwidth_spread: tuple[float, float] | None = None  # the calm readings' lowest and highest
    cpu_kernels: str = ""  # llama.cpp's CPU kernels used here, in words (app/cpu_kernels.py); "" not read

    @property
    def gpu_offload_possible(self) -> bool:
        """A GPU is present and the installed llama.cpp build has a backend for it."""
        gpu_backends = {"CUDA", "Vulkan", "Metal", "HIP", "SYCL"}
        return bool(self.gpus) and bool(gpu_backends & set(self.llama_backends))

    @property
    def fingerprint(self) -> str:
        """Stable id of this machine's hardware (for caching and for saved benchmark results)."""
        key = json.dumps(
            [
                self.os,
                self.arch,
                self.cpu_model,
                self.cores_physical,
                self.cores_logical,
                round(self.ram_total / 2**30),
                [g.name for g in self.gpus],
            ]
        )
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def bandwidth_words(self) -> str:
        """The bandwidth and how sure it is: calm readings' spread, or taken only while busy."""
        if self.bandwidth_gbs is None:
            return "not measured"
        text = f"{self.bandwidth_gbs} GB/s memory copy"
        if self.bandwidth_busy:
            return text + " (measured while other programs kept the cores busy: it reads low; measured again later)"
        spread = self.bandwidth_spread
        if spread and spread[0] != spread[1]:
            text += f" (best of calm readings {spread[0]}–{spread[1]})"
        return text + (" (measured earlier)" if self.bandwidth_cached else "")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["gpu_offload_possible"] = self.gpu_offload_possible
        out["fingerprint"] = self.fingerprint
        return out


def cpu_model() -> str:
    system = platform.system()
    try:
        if system == "Linux":
            for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
        elif system == "Darwin":
            return _run(["sysctl", "-n", "machdep.cpu.brand_string"]) or platform.processor()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def simd_features() -> list[str]:
    """The instruction sets llama.cpp cares about, in ggml's names ("illegal instruction" starts here)."""
    return cpu_features.read().ordered()


def _run(cmd: list[str], timeout: float = 2.0) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def detect_gpus() -> list[GPU]:
    gpus: list[GPU] = []
    try:  # NVIDIA through nvidia-ml-py, when installed
        import pynvml

        pynvml.nvmlInit()
        try:
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = pynvml.nvmlDeviceGetName(handle)
                mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
                name = name if isinstance(name, str) else name.decode()
                gpus.append(GPU(name, "NVIDIA", int(mem.total), int(mem.free)))
        finally:
            pynvml.nvmlShutdown()
    except ImportError:
        pass  # nvidia-ml-py is optional: nvidia-smi below is tried instead
    except Exception:  # noqa: BLE001 - no driver, or no device: fall through
        log.info("NVML found no usable GPU", exc_info=True)
        gpus = []
    if not gpus and shutil.which("nvidia-smi"):
        out = _run(["nvidia-smi", "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"])
        for line in out.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 3 and parts[1].isdigit():
                gpus.append(
                    GPU(
                        parts[0], "NVIDIA", int(parts[1]) * 2**20, int(parts[2]) * 2**20 if parts[2].isdigit() else None
                    )
                )
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        total = psutil.virtual_memory().total
        # Metal's default working-set limit is about 3/4 of unified memory.
        gpus.append(GPU("Apple GPU (unified memory)", "Apple", int(total * 0.75), None, unified=True))
    return gpus


BACKEND_LIBS = {
    "cuda": "CUDA",
    "vulkan": "Vulkan",
    "metal": "Metal",
    "hip": "HIP",
    "sycl": "SYCL",
    "blas": "BLAS",
    "cpu": "CPU",
    "opencl": "OpenCL",
}


def llama_backends() -> list[str]:
    """Backends compiled into the installed llama-cpp-python, read from its shared libraries
    (without importing llama_cpp, which core must not do)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.origin:
        return []
    lib_dir = Path(spec.origin).parent / "lib"
    names = [p.name.lower() for p in lib_dir.iterdir()] if lib_dir.is_dir() else []
    found = {"CPU"}
    for name in names:
        for key, label in BACKEND_LIBS.items():
            if name.startswith((f"libggml-{key}", f"ggml-{key}")):
                found.add(label)
    if platform.system() == "Darwin" and platform.machine() == "arm64" and any("metal" in n for n in names):
        found.add("Metal")
    return sorted(found, key=lambda b: (b != "CPU", b))


def disk_free(path: Path) -> int | None:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def read_profile(models_dir: Path, cache_dir: Path | None = None, measure: bool = True) -> HardwareProfile:
    """Read the profile; the bandwidth probe runs once per machine and is cached."""
    vm = psutil.virtual_memory()
    profile = HardwareProfile(
        os=f"{platform.system()} {platform.release()}",
        arch=platform.machine(),
        cpu_model=cpu_model(),
        cores_physical=physical_cores(),
        cores_logical=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        simd=simd_features(),
        ram_total=int(vm.total),
        ram_available=int(vm.available),
        disk_free=disk_free(models_dir),
        models_dir=str(models_dir),
        gpus=detect_gpus(),
        llama_backends=llama_backends(),
    )
    if measure:
        profile.bandwidth_gbs, profile.bandwidth_cached = _cached_bandwidth(profile, cache_dir)
    return profile


# A copy probe only ever reads low (other work, a busy memory bus): it is measured again after a
# day and the best calm reading is kept, so the "decode speed bound" it gives does not stay below
# the speed this machine really reaches (a cached 17.5 GB/s once bounded a model at 71 t/s that ran
# at 78). A reading taken while other programs kept the cores busy is marked so, never kept over a
# calm one, and measured again at the next reading.
BANDWIDTH_MAX_AGE_S = 24 * 3600
BANDWIDTH_CALM_WAIT_S = 15.0  # how long a reading waits for other programs to calm down
CALM_READINGS_KEPT = 5


def _cached_bandwidth(profile: HardwareProfile, cache_dir: Path | None) -> tuple[float | None, bool]:
    cache = cache_dir / f"bandwidth-{profile.fingerprint}.json" if cache_dir else None
    calm: list[float] = []
    measured_at = 0.0
    if cache and cache.exists():
        try:
            data = json.loads(cache.read_text())
            calm = [float(x) for x in data.get("calm", [data["gbs"]] if not data.get("busy") else [])]
            measured_at = float(data.get("measured_at", 0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("Unreadable bandwidth cache %s: measuring again", cache, exc_info=True)
            calm = []
        if calm and time.time() - measured_at < BANDWIDTH_MAX_AGE_S:
            profile.bandwidth_spread = (min(calm), max(calm))
            return max(calm), True
    wait_calm(BANDWIDTH_CALM_WAIT_S)
    watch = OtherLoad()
    gbs = measure_bandwidth(threads=profile.cores_physical)
    reading = watch.reading()
    if reading.busy:
        log.info("Bandwidth %.2f GB/s measured while %s: not kept over a calm reading", gbs, reading)
        profile.bandwidth_busy = not calm
    else:
        calm = [*calm, gbs][-CALM_READINGS_KEPT:]
    if calm:
        profile.bandwidth_spread = (min(calm), max(calm))
    best = max(calm) if calm else gbs
    if cache:
        when = measured_at if reading.busy else time.time()  # a busy reading is measured again next time
        saved = {"gbs": best, "calm": calm, "busy": not calm, "measured_at": when}
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(saved))
        except OSError:
            log.warning("Could not keep the bandwidth in %s: it is measured again next time", cache, exc_info=True)
    return best, False
