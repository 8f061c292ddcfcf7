"""Milliseconds per training step of K DIP networks: one after the other, side by side in worker
processes (one thread each), or batched into one vmap step (dipcourse.batched.fit_many's three modes).

Usage:  python benchmarks/bench_batched.py [--size 64] [--ks 1 2 4] [--steps 20] [--device cpu]

All variants run the same K problems (50 % inpainting, σ = 10/255, the thesis network) through
:func:`dipcourse.batched.fit_many` — ``workers=0`` (sequential, this process's threads), ``workers=None``
(processes: one per core, one torch thread each; CPU only) and ``batched=True`` — in the same run, so
the ratios are fair even on a shared machine. Times are wall-clock per step of all K networks (one
step = one Adam update of every network), warm-up excluded (the worker pool is started by the warm-up).
The CPU column (this process's time, all its threads) is given for the modes that compute here.
"""
import argparse
import platform
import time

import torch
from machine import describe

from dipcourse.batched import fit_many
from dipcourse.operators import RandomMask, measure


def problems(count, size, device):
    generator = torch.Generator().manual_seed(0)
    refs = [torch.rand(3, size, size, generator=generator) for _ in range(count)]
    ops = [RandomMask((3, size, size), keep=0.5, seed=k) for k in range(count)]
    bs = [measure(A, ref, 10 / 255, seed=k).to(device) for k, (A, ref) in enumerate(zip(ops, refs))]
    return ops, bs


def ms_per_step(count, size, steps, mode, device):
    ops, bs = problems(count, size, device)
    options = {"sequential": dict(batched=False, workers=0), "processes": dict(batched=False, workers=None),
               "batched": dict(batched=True)}[mode]
    fit_many("dip", ops, bs, 2, progress=False, **options)        # warm-up (allocations, kernels, workers)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, start_cpu = time.perf_counter(), time.process_time()
    fit_many("dip", ops, bs, steps, progress=False, **options)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / steps, 1000 * (time.process_time() - start_cpu) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"# K DIP networks per step, {args.size}x{args.size}x3, thesis SkipNet, torch {torch.__version__}, {name}; "
          f"{describe()}")
    processes = device.type == "cpu"
    print("| K | sequential ms/step (wall / CPU) | " + ("processes ms/step (wall) | " if processes else "")
          + "batched ms/step (wall / CPU) | speed-up of " + ("processes, " if processes else "") + "batched (wall) |")
    print("|---|---|" + ("---|" if processes else "") + "---|---|")
    for count in args.ks:
        seq_wall, seq_cpu = ms_per_step(count, args.size, args.steps, "sequential", device)
        par_wall = ms_per_step(count, args.size, args.steps, "processes", device)[0] if processes else None
        bat_wall, bat_cpu = ms_per_step(count, args.size, args.steps, "batched", device)
        gains = (f"{seq_wall / par_wall:.2f}×, " if processes else "") + f"{seq_wall / bat_wall:.2f}×"
        print(f"| {count} | {seq_wall:.1f} / {seq_cpu:.1f} | " + (f"{par_wall:.1f} | " if processes else "")
              + f"{bat_wall:.1f} / {bat_cpu:.1f} | {gains} |", flush=True)


if __name__ == "__main__":
    main()
