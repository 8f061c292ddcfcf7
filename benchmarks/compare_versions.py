"""Per-iteration cost of the course's training steps in two versions of the package, in one run.

A refactor must not slow a step down. This script checks out another commit of the repository into a
temporary git worktree (default: ``e5ed1a1``, the last commit before the package's second structure),
and times the same calls — the ones whose signature both versions share — in alternating subprocesses:
``PYTHONPATH`` points at the old or the new package, the order alternates from round to round, and each
subprocess reports the median CPU and wall time of one iteration from the run's own history
(``Result.seconds_per_iteration``). The ratio new / old of the medians over the rounds is the answer
(< 1: the new version is faster). Run it on a quiet machine with a fixed thread count.

Usage::

    python benchmarks/compare_versions.py [--base e5ed1a1] [--rounds 5] [--threads 2]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

from machine import describe

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Each case: a name and Python code that defines `result` (or `results`, a list) from calls both versions have.
SETUP = """
import inspect, torch
from dipcourse import admm, priors
from dipcourse.batched import fit_many
from dipcourse.data import load_image
from dipcourse.dip import fit_dip
from dipcourse.operators import RandomMask, measure
def inpainting(size, count=1):
    refs = [load_image(name, size=size) for name in ("chelsea", "astronaut", "coffee")[:count]]
    ops = [RandomMask(r.shape, keep=0.5, seed=k) for k, r in enumerate(refs)]
    return refs, ops, [measure(A, r, 10 / 255, seed=k) for k, (A, r) in enumerate(zip(ops, refs))]
SEQUENTIAL = {"workers": 0} if "workers" in inspect.signature(fit_many).parameters else {}
"""
CASES = {
    "fit_dip, thesis net, 64 px": "refs, ops, bs = inpainting(64)\n"
                                  "result = fit_dip(ops[0], bs[0], ITERS, ref=refs[0], progress=False)",
    "fit_dip, thesis net, 128 px": "refs, ops, bs = inpainting(128)\n"
                                   "result = fit_dip(ops[0], bs[0], ITERS // 2, ref=refs[0], progress=False)",
    "fit_dip, ns = 4, lr 0.01, 32 px": "refs, ops, bs = inpainting(32)\n"
                                       "result = fit_dip(ops[0], bs[0], ITERS, ref=refs[0], lr=0.01, progress=False, "
                                       "net=__import__('dipcourse.dip').dip.SkipNet(nd=[16, 32, 64], ns=[4] * 3))",
    "dip_admm_v2 + TV, 64 px": "refs, ops, bs = inpainting(64)\n"
                               "result = admm.dip_admm_v2(ops[0], bs[0], priors.make_prox('tv'), ITERS, ref=refs[0], "
                               "progress=False)",
    "fit_many dip, K = 2 one after the other, 64 px": "refs, ops, bs = inpainting(64, 2)\n"
                                                      "results = fit_many('dip', ops, bs, ITERS, refs=refs, "
                                                      "batched=False, progress=False, **SEQUENTIAL)",
    "fit_many dip, K = 2 batched (vmap), 64 px": "refs, ops, bs = inpainting(64, 2)\n"
                                                 "results = fit_many('dip', ops, bs, ITERS, refs=refs, batched=True, "
                                                 "progress=False)",
}
REPORT = """
runs = results if "results" in dir() else [result]
print(json.dumps({"cpu": sum(r.seconds_per_iteration("time_cpu") for r in runs),
                  "wall": sum(r.seconds_per_iteration("time_wall") for r in runs)}))
"""


def measure(package, case, iters, threads):
    code = "import json\nITERS = %d\n" % iters + SETUP + CASES[case] + REPORT
    env = dict(os.environ, PYTHONPATH=str(package), OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="e5ed1a1", help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = pathlib.Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.base], check=True,
                       capture_output=True)
        try:
            print(f"# new (working tree) / old ({args.base}): per-iteration time, {args.rounds} alternating rounds, "
                  f"{args.threads} threads; {describe()}")
            print("| step | old CPU ms | new CPU ms | new / old (CPU) | old wall ms | new wall ms | new / old (wall) |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for case in args.cases:
                times = {"old": [], "new": []}
                for r in range(args.rounds):
                    for version in (("old", "new") if r % 2 == 0 else ("new", "old")):
                        package = old if version == "old" else ROOT
                        times[version].append(measure(package, case, args.iters, args.threads))
                med = {v: {k: 1000 * statistics.median(t[k] for t in times[v]) for k in ("cpu", "wall")}
                       for v in times}
                print(f"| {case} | {med['old']['cpu']:.1f} | {med['new']['cpu']:.1f} | "
                      f"{med['new']['cpu'] / med['old']['cpu']:.3f} | {med['old']['wall']:.1f} | "
                      f"{med['new']['wall']:.1f} | {med['new']['wall'] / med['old']['wall']:.3f} |", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)


if __name__ == "__main__":
    main()
