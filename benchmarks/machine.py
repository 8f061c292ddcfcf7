"""The one line every benchmark prints about the machine it ran on (benchmarks/README.md asks for it)."""
import os
import platform

import torch


def describe():
    """CPU model, visible cores, torch build and threads, and the GPU if there is one."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads{gpu}, Python {platform.python_version()}")
