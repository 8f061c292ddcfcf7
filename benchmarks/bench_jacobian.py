"""Benchmark of dipcourse.jacobian: cost of J Jᵀ v, and ARPACK vs the block method for the top k.

    python benchmarks/bench_jacobian.py                      # teaching scale (64×64×3, thesis network)
    python benchmarks/bench_jacobian.py --size 128 --k 16    # paper scale
    python benchmarks/bench_jacobian.py --threads 1          # torch threads (see below)

Prints a Markdown table. Times are wall-clock seconds of one run on this machine; compare the
ratios (measured in the same run), not the absolute numbers, when the machine is shared. On a
CPU shared with other jobs, ``--threads 1`` avoids OpenMP oversubscription, which can slow small
batched kernels down by an order of magnitude.
"""
import argparse
import platform
import time

import numpy as np
import torch

from dipcourse import jacobian
from dipcourse.dip import SkipNet, make_input


def timed(fn, repeat=1):
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - start) / repeat, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image side (multiple of 64 for the thesis network)")
    parser.add_argument("--k", type=int, default=16, help="number of leading eigenpairs")
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 64], help="block sizes for batched J Jᵀ")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--skip-arpack", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    net = SkipNet()
    z = make_input(32, args.size, args.size)
    f = jacobian._NetworkFunction(net, z)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device cpu; image 3×{args.size}×{args.size} (n = {f.n}), "
          f"w = {net.parameter_count():,}")

    v = torch.randn(f.n)
    with torch.no_grad():
        single, _ = timed(lambda: f.jjt(v), repeat=3)
        rows = [("J Jᵀ v, one vector", single, 1.0)]
        for batch in args.batch:
            V = torch.randn(f.n, batch)
            t, _ = timed(lambda: f.jjt_block(V, batch))
            rows.append((f"J Jᵀ V, block of {batch} (per vector)", t / batch, single / (t / batch)))
    print("\n| product | s per vector | vectors/s vs one at a time |\n|---|---|---|")
    for name, t, ratio in rows:
        print(f"| {name} | {t:.4f} | {ratio:.1f}× |")

    print(f"\n| top-{args.k} method | wall s | J Jᵀ products | passes | max residual / λ₁ |\n|---|---|---|---|---|")
    results = {}
    for method in ([] if args.skip_arpack else ["arpack"]) + ["block"]:
        start = time.perf_counter()
        values, vectors, info = jacobian.top_eigenpairs(net, z, args.k, method=method, return_info=True)
        elapsed = time.perf_counter() - start
        residual = jacobian.eigenpair_residuals(net, z, values, vectors).max() / values[0]
        results[method] = (elapsed, values)
        print(f"| {method} | {elapsed:.1f} | {info['matvecs']} | {info['passes'] or '—'} | {residual:.1e} |")
    if "arpack" in results:
        (t_a, v_a), (t_b, v_b) = results["arpack"], results["block"]
        print(f"\nblock vs ARPACK: {t_a / t_b:.2f}× faster; max |λ_block − λ_arpack| / λ₁ = "
              f"{np.abs(v_a - v_b).max() / v_a[0]:.1e}")


if __name__ == "__main__":
    main()
