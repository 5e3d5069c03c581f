"""Efficiency of one prediction as FLARE measures it: wall time, peak RAM, peak GPU
memory and the GPU memory-time area (memory sampled every 0.1 s, MB x s)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

SAMPLE_SECONDS = 0.1


def memory_time_area(samples_mb: list[float], interval_s: float = SAMPLE_SECONDS) -> float:
    """Area under the sampled memory curve (MB x s), each sample held for one interval."""
    return float(sum(samples_mb) * interval_s)


def gpu_memory_reader(device_type: str) -> Callable[[], float] | None:
    """MB of GPU memory this process holds: NVML's per-process figure when available
    (what nvidia-smi shows, context included), else PyTorch's reserved memory."""
    if device_type != "cuda":
        return None
    import os

    import torch

    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        pid = os.getpid()

        def nvml() -> float:
            procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            return sum((p.usedGpuMemory or 0) for p in procs if p.pid == pid) / 2**20

        return nvml
    except Exception:  # no NVML bindings: PyTorch's allocator view
        return lambda: torch.cuda.memory_reserved() / 2**20


class MemorySampler:
    """Samples this process's RSS (and GPU memory) every 0.1 s on a background thread."""

    def __init__(self, gpu: Callable[[], float] | None = None, interval_s: float = SAMPLE_SECONDS):
        import psutil

        self._proc, self._gpu, self.interval = psutil.Process(), gpu, interval_s
        self.ram_mb: list[float] = []
        self.gpu_mb: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.ram_mb.append(self._proc.memory_info().rss / 2**20)
        if self._gpu is not None:
            self.gpu_mb.append(self._gpu())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "MemorySampler":
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # the end state counts too
        self.wall_s = time.perf_counter() - self.started

    def record(self) -> dict:
        return {
            "wall_time_s": round(self.wall_s, 3),
            "peak_ram_mb": round(max(self.ram_mb), 1),
            "peak_gpu_mb": round(max(self.gpu_mb), 1) if self.gpu_mb else 0.0,
            "gpu_memory_time_area_mb_s": round(memory_time_area(self.gpu_mb, self.interval), 1),
            "sample_interval_s": self.interval,
            "samples": len(self.ram_mb),
        }
