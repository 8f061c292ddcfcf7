"""Milliseconds per training step: K DIP networks batched (dipcourse.batched) vs one after the other.

Usage:  python benchmarks/bench_batched.py [--size 64] [--ks 1 4 8] [--steps 20] [--device cpu]

Both variants run the same K problems (50 % inpainting, σ = 10/255, the thesis network) through
:func:`dipcourse.batched.fit_many`, once with ``batched=False`` and once with ``batched=True``, in
the same process, so the ratio is fair even on a shared machine. Times are wall-clock per step
of all K networks (one step = one Adam update of every network), warm-up excluded; the CPU
column (process time, all threads) is the steadier one on a machine shared with other jobs.
"""
import argparse
import platform
import time

import torch

from dipcourse.batched import fit_many
from dipcourse.operators import RandomMask, measure


def problems(count, size, device):
    generator = torch.Generator().manual_seed(0)
    refs = [torch.rand(3, size, size, generator=generator) for _ in range(count)]
    ops = [RandomMask((3, size, size), keep=0.5, seed=k) for k in range(count)]
    bs = [measure(A, ref, 10 / 255, seed=k).to(device) for k, (A, ref) in enumerate(zip(ops, refs))]
    return ops, bs


def ms_per_step(count, size, steps, batched, device):
    ops, bs = problems(count, size, device)
    fit_many("dip", ops, bs, 2, batched=batched, progress=False)        # warm-up (allocations, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, start_cpu = time.perf_counter(), time.process_time()
    fit_many("dip", ops, bs, steps, batched=batched, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / steps, 1000 * (time.process_time() - start_cpu) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"# batched vs sequential DIP steps, {args.size}x{args.size}x3, thesis SkipNet, "
          f"torch {torch.__version__}, {name}")
    print("| K | sequential ms/step (wall / CPU) | batched ms/step (wall / CPU) | speed-up wall | speed-up CPU |")
    print("|---|---|---|---|---|")
    for count in args.ks:
        seq_wall, seq_cpu = ms_per_step(count, args.size, args.steps, False, device)
        bat_wall, bat_cpu = ms_per_step(count, args.size, args.steps, True, device)
        print(f"| {count} | {seq_wall:.1f} / {seq_cpu:.1f} | {bat_wall:.1f} / {bat_cpu:.1f} | "
              f"{seq_wall / bat_wall:.2f}× | {seq_cpu / bat_cpu:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
