"""Per-iteration cost of DIP-ADMM-v1 (N = 1, 5, 10), DIP-ADMM-v2 (TV, NLM, BM3D) and Adam on loss (36).

The thesis's task at a reduced size: 50 % inpainting (RandomMask) with σ = 10/255 on a 64 px colour
image, the thesis network and settings (ρ = 1, lr 0.001, TV 0.01, NLM σ 0.01, BM3D σ 0.05). Every
method runs a few iterations from the same seed; the table reports the median CPU and wall time per
iteration, the prox calls per iteration, and each method's cost relative to DIP-ADMM-v2 with TV,
measured in the same run (the machine may be shared: compare the ratios, not the seconds).

With ``--loss-seeds`` it instead runs v1 (N = 1, 5, 10) and v2 with TV for ``--loss-iters`` iterations
from each seed and prints the final loss (36) per iteration count — the evidence behind lesson 03's
note that, per iteration, v1 and v2 end within the seed-to-seed spread of each other.

    python benchmarks/bench_admm.py [--size 64] [--iters 30] [--bm3d-iters 8]
    python benchmarks/bench_admm.py --loss-seeds 0 1 2 3 [--loss-iters 600] [--size 64]
"""
import argparse

import numpy as np

from dipcourse import admm, data, operators, priors
from machine import describe


def thesis_task(size):
    """50 % inpainting with σ = 10/255 (§3.3) of the astronaut at ``size`` px, and the TV 0.01 prox."""
    x_true = data.load_image("astronaut", size=size)
    A = operators.RandomMask(x_true.shape, keep=0.5, seed=0)
    b = operators.measure(A, x_true, 10 / 255, seed=0)
    return x_true, A, b, priors.make_prox("tv", lam=0.01)


def run_all(size, iters, bm3d_iters):
    x_true, A, b, tv = thesis_task(size)
    cases = [
        ("DIP-ADMM-v1, TV, N=1", lambda n: admm.dip_admm_v1(A, b, tv, n, inner=1, progress=False), iters),
        ("DIP-ADMM-v1, TV, N=5", lambda n: admm.dip_admm_v1(A, b, tv, n, inner=5, progress=False), iters),
        ("DIP-ADMM-v1, TV, N=10", lambda n: admm.dip_admm_v1(A, b, tv, n, inner=10, progress=False), iters),
        ("DIP-ADMM-v2, TV", lambda n: admm.dip_admm_v2(A, b, tv, n, progress=False), iters),
        ("DIP-ADMM-v2, NLM", lambda n: admm.dip_admm_v2(A, b, priors.make_prox("nlm"), n, progress=False), iters),
        ("DIP-ADMM-v2, BM3D", lambda n: admm.dip_admm_v2(A, b, priors.make_prox("bm3d"), n, progress=False),
         bm3d_iters),
        ("Adam on (36)", lambda n: admm.dip_tv_gd(A, b, n, lam=0.01, progress=False), iters),
    ]
    rows = []
    for name, run, n in cases:
        result = run(n + 1)                   # +1: the first iteration includes one-off set-up costs
        rows.append(dict(name=name, iters=n, cpu=1e3 * result.seconds_per_iteration("time_cpu"),
                         wall=1e3 * result.seconds_per_iteration("time_wall"),
                         prox=result.history["prox_calls"][-1] / len(result.history["iteration"])))
    base = next(r for r in rows if r["name"] == "DIP-ADMM-v2, TV")
    for row in rows:
        row["ratio"] = row["cpu"] / base["cpu"]
    return rows


def table(rows, size):
    lines = [f"Per-iteration cost at {size}x{size}x3, 50 % inpainting, thesis network (median over iterations):",
             "",
             "| method | iterations timed | CPU ms / it | wall ms / it | prox calls / it | CPU time vs v2-TV |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['iters']} | {r['cpu']:.1f} | {r['wall']:.1f} | {r['prox']:.0f} | "
                     f"{r['ratio']:.2f}x |")
    return "\n".join(lines)


def final_losses(size, iters, seeds):
    """Final loss (36) of each method per seed (``Result.final_median``, as lesson 03 compares runs)."""
    x_true, A, b, tv = thesis_task(size)
    runs = {f"v1, N={n}": (lambda seed, n=n: admm.dip_admm_v1(A, b, tv, iters, inner=n, seed=seed, progress=False))
            for n in (1, 5, 10)}
    runs["v2"] = lambda seed: admm.dip_admm_v2(A, b, tv, iters, seed=seed, progress=False)
    rows = {}
    for seed in seeds:
        for name, run in runs.items():
            rows.setdefault(name, []).append(run(seed).final_median("loss"))
    return rows


def loss_table(rows, size, iters, seeds):
    lines = [f"Final loss (36) after {iters} iterations at {size}x{size}x3 (median of the last 10 %), per seed:",
             "",
             "| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | spread (max/min − 1) |",
             "|---|" + "---|" * (len(seeds) + 2)]
    for name, losses in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in losses)
                     + f" | {np.mean(losses):.2f} | {100 * (max(losses) / min(losses) - 1):.1f} % |")
    v2 = np.array(rows["v2"])
    best_v1 = np.min([rows[name] for name in rows if name != "v2"], axis=0)
    lines += ["", "v2 above the best v1 of the same seed by: "
              + ", ".join(f"{100 * (a / c - 1):+.1f} %" for a, c in zip(v2, best_v1))]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--bm3d-iters", type=int, default=8)
    parser.add_argument("--loss-seeds", type=int, nargs="+", default=None,
                        help="compare final losses of v1 and v2 over these seeds instead of timing")
    parser.add_argument("--loss-iters", type=int, default=600)
    args = parser.parse_args()
    print(f"Machine: {describe()}\n")
    if args.loss_seeds is not None:
        rows = final_losses(args.size, args.loss_iters, args.loss_seeds)
        print(loss_table(rows, args.size, args.loss_iters, args.loss_seeds))
        return
    rows = run_all(args.size, args.iters, args.bm3d_iters)
    print(table(rows, args.size))


if __name__ == "__main__":
    main()
