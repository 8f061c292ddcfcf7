"""Time the anisotropic TV prox: the built-in torch backend against the prox-tv C library.

Cases: the thesis's 128×128×3 image at λ = 0.01 (the thesis's TV weight, what DIP-ADMM-v2 calls once
per iteration) and λ = 0.1, plus 64×64×3 at λ = 0.01 (the teaching profile's size). Each image is
the astronaut, clean and with noise σ = 10/255 (what the prox sees inside ADMM). The two backends
run alternately, call after call, in the same process, so that a shared machine slows both alike;
the table reports the median time per call and the ratio torch / prox-tv. With ``--device cuda``
the torch backend runs on the GPU (prox-tv always runs on the CPU).

    python benchmarks/bench_prox_tv.py [--repeats 7] [--device cpu|cuda] [--threads N]

``--threads`` sets torch's intra-op threads (default: torch's choice). On a CPU shared by many jobs
one thread can be several times faster than two: the threads of every small tensor operation wait
for each other.
"""
import argparse
import time

import numpy as np
import torch

from dipcourse import data, priors
from dipcourse.operators import Identity, measure
from machine import describe

CASES = [(128, 0.01), (128, 0.1), (64, 0.01)]


def timed(fn, device):
    """(result, wall seconds, CPU seconds) of one call, synchronising the GPU if used."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run_case(image, lam, repeats, device):
    on_device = image.to(device)
    priors.prox_tv(on_device, lam, backend="torch")  # warm-up (allocator, kernels)
    walls = {"proxtv": [], "torch": []}
    cpus = {"proxtv": [], "torch": []}
    for _ in range(repeats):
        ref, wall, cpu = timed(lambda: priors.prox_tv(image, lam, backend="proxtv"), torch.device("cpu"))
        walls["proxtv"].append(wall)
        cpus["proxtv"].append(cpu)
        ours, wall, cpu = timed(lambda: priors.prox_tv(on_device, lam, backend="torch"), device)
        walls["torch"].append(wall)
        cpus["torch"].append(cpu)
    return dict(wall={k: float(np.median(v)) for k, v in walls.items()},
                cpu={k: float(np.median(v)) for k, v in cpus.items()},
                max_abs=float((ours.cpu().double() - ref.double()).abs().max()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not priors.proxtv_available():
        raise SystemExit(priors.PROXTV_INSTALL)
    device = torch.device(args.device)
    print(f"# machine: {describe()}; device for the torch backend: {device}")
    rows = []
    for size, lam in CASES:
        clean = data.load_image("astronaut", size=size)
        noisy = measure(Identity(clean.shape), clean, 10 / 255, seed=0)
        for label, image in (("clean", clean), ("noisy σ=10/255", noisy)):
            r = run_case(image, lam, args.repeats, device)
            rows.append((f"{size}×{size}×3", lam, label, r))
    print("| image | λ | input | prox-tv ms/call (wall, CPU) | torch ms/call (wall, CPU) "
          "| torch / prox-tv (wall) | torch / prox-tv (CPU) | max-abs torch − prox-tv |")
    print("|" + "---|" * 8)
    for shape, lam, label, r in rows:
        wall, cpu = r["wall"], r["cpu"]
        print(f"| {shape} | {lam} | {label} | {1e3 * wall['proxtv']:.1f}, {1e3 * cpu['proxtv']:.1f} "
              f"| {1e3 * wall['torch']:.1f}, {1e3 * cpu['torch']:.1f} | {wall['torch'] / wall['proxtv']:.2f} "
              f"| {cpu['torch'] / cpu['proxtv']:.2f} | {r['max_abs']:.1e} |")

if __name__ == "__main__":
    main()
