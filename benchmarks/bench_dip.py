"""Time per DIP iteration: ``fit_dip`` against a plain training loop, thesis network, denoising (A = I).

The plain loop below is the bare minimum one DIP iteration needs — forward, ½‖b − x‖², backward,
Adam step — on the same network (same seed), same input and same optimiser. ``fit_dip`` adds its
bookkeeping on top (PSNR of x and of the running average, history, callbacks); the overhead is
the extra time per iteration in percent (goal: ≤ 10 %).

A third loop, "torch defaults", is the plain loop as most tutorials write it: NCHW tensors and
``torch.optim.Adam``'s per-tensor update. The course trains in channels-last layout with the fused
Adam kernel on the CPU (``dipcourse.training.to_device`` and ``dipcourse.training.adam``); the speed-up column
is torch defaults / plain loop.

The loops are measured alternately (who goes first alternates too), several rounds each. On a machine shared with other jobs the
wall-clock time mostly measures the others, so the overhead is computed from the *CPU time* of
this process (``time.process_time``; run with one torch thread, ``OMP_NUM_THREADS=1``, so that
no thread spins while waiting), taking the fastest round of each. Wall times are reported too.
Report ratios from one run, not absolute times from different runs. On a GPU (``--device cuda``)
CPU time means nothing and the wall time is used.

Usage::

    python benchmarks/bench_dip.py                  # 64, 128, 256 px on the CPU
    python benchmarks/bench_dip.py --sizes 64 128 --device cuda --cuda-graph
    python benchmarks/bench_dip.py --append-readme  # append the table to benchmarks/README.md
"""
import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from dipcourse.config import seed_everything
from dipcourse.dip import SkipNet, fit_dip, make_input
from dipcourse.operators import Identity, measure
from dipcourse.result import Tracker
from dipcourse.training import adam, to_device

ITERS = {64: 20, 128: 8, 256: 3}


def problem(size, seed=0):
    """A smooth random image, its noisy version (σ = 25/255) and the identity operator."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, size // 8, size // 8, generator=g), size=(size, size),
                                        mode="bilinear", align_corners=False)[0]
    A = Identity(x.shape)
    return x, A, measure(A, x, 25 / 255, seed=seed)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def thesis_net(b, device, seed=0):
    """The thesis network and its input, built the way ``fit_dip`` builds its defaults."""
    seed_everything(seed)
    net = SkipNet(out_channels=b.shape[0]).to(device)
    return net, make_input(32, b.shape[1], b.shape[2], seed=seed).to(device)


def plain_loop(b, iters, device, seed=0, torch_defaults=False):
    """(wall, CPU) seconds per iteration of the bare DIP loop (no bookkeeping).

    With ``torch_defaults`` the network stays in NCHW layout and Adam uses its default per-tensor
    update; otherwise network, input and optimiser are set up as ``fit_dip`` sets them up.
    """
    net, z = thesis_net(b, device, seed)
    if torch_defaults:
        net.train()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    else:
        net, z = to_device(net, z, device)
        optimizer = adam(net.parameters(), 1e-3, device)
    b = b.to(device)
    synchronize(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
        optimizer.zero_grad(set_to_none=True)
        x = net(z)[0]
        loss = 0.5 * torch.sum((b - x) ** 2)
        loss.backward()
        optimizer.step()
        loss.item()                     # fit_dip reads the loss every iteration; so does the plain loop
    synchronize(device)
    return (time.perf_counter() - start) / iters, (time.process_time() - start_cpu) / iters


def fit_dip_loop(A, b, x, iters, device, seed=0, cuda_graph=False):
    """(wall, CPU) seconds per iteration of ``fit_dip`` with a reference (PSNR and smoothed PSNR every iteration)."""
    net, z = thesis_net(b, device, seed)
    synchronize(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    fit_dip(A, b, iters, net=net, z=z, ref=x, seed=seed, device=device, progress=False, cuda_graph=cuda_graph)
    synchronize(device)
    return (time.perf_counter() - start) / iters, (time.process_time() - start_cpu) / iters


def bookkeeping_loop(x, device, reps=50):
    """(wall, CPU) seconds of fit_dip's per-iteration bookkeeping alone: ``Tracker.step`` (PSNR of x and
    of the running average, best image, times) on iterates of this size. Short and repeatable, so it
    bounds the overhead more steadily than the difference of two noisy loop timings."""
    ref = x.to(device)
    iterates = [torch.rand_like(ref) for _ in range(4)]
    tracker = Tracker(ref=ref)
    synchronize(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    for it in range(reps):
        tracker.step(it, iterates[it % 4], loss=float(it))
    synchronize(device)
    return (time.perf_counter() - start) / reps, (time.process_time() - start_cpu) / reps


def measure_size(size, device, rounds, cuda_graph=False):
    x, A, b = problem(size)
    iters = ITERS.get(size, 5) * (10 if device.type == "cuda" else 1)
    plain_loop(b, 2, device)                                   # warm-up: allocator, kernels
    plain, ours, books, defaults = [], [], [], []
    for round_ in range(rounds):
        if round_ % 2:                                         # alternate who goes first
            ours.append(fit_dip_loop(A, b, x, iters, device, cuda_graph=cuda_graph))
            plain.append(plain_loop(b, iters, device))
        else:
            plain.append(plain_loop(b, iters, device))
            ours.append(fit_dip_loop(A, b, x, iters, device, cuda_graph=cuda_graph))
        books.append(bookkeeping_loop(x, device))
        defaults.append(plain_loop(b, iters, device, torch_defaults=True))
    which = 0 if device.type == "cuda" else 1          # wall time on a GPU, CPU time on the CPU
    p, f = min(r[which] for r in plain), min(r[which] for r in ours)
    k, d = min(r[which] for r in books), min(r[which] for r in defaults)
    return dict(size=size, iters=iters, rounds=rounds, plain_ms=1e3 * p, fit_ms=1e3 * f, overhead=100 * (f / p - 1),
                book_ms=1e3 * k, book_share=100 * k / p, defaults_ms=1e3 * d,
                plain_wall_ms=1e3 * statistics.median(r[0] for r in plain),
                fit_wall_ms=1e3 * statistics.median(r[0] for r in ours),
                defaults_wall_ms=1e3 * statistics.median(r[0] for r in defaults))


def table(rows, device, cuda_graph):
    name = "fit_dip (CUDA graph)" if cuda_graph else "fit_dip"
    kind = "wall" if device.type == "cuda" else "CPU"
    lines = [f"| image | plain loop, {kind} (ms/it) | {name}, {kind} (ms/it) | overhead | bookkeeping alone (ms/it, % of plain) "
             f"| torch defaults, {kind} (ms/it) | speed-up of the course's setup | wall, median: defaults / plain / {name} (ms/it) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']}×{r['size']}×3 | {r['plain_ms']:.1f} | {r['fit_ms']:.1f} | {r['overhead']:+.1f} % "
                     f"| {r['book_ms']:.2f} ({r['book_share']:.1f} %) | {r['defaults_ms']:.1f} "
                     f"| {r['defaults_ms'] / r['plain_ms']:.2f}× "
                     f"| {r['defaults_wall_ms']:.0f} / {r['plain_wall_ms']:.0f} / {r['fit_wall_ms']:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cuda-graph", action="store_true", help="time fit_dip(cuda_graph=True) (CUDA only)")
    parser.add_argument("--machine", default=f"{platform.machine()}, {torch.get_num_threads()} threads")
    parser.add_argument("--append-readme", action="store_true", help="append the table to benchmarks/README.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []
    for size in args.sizes:
        rows.append(measure_size(size, device, args.rounds, cuda_graph=args.cuda_graph))
        print(f"{size} px: plain {rows[-1]['plain_ms']:.1f} ms/it, fit_dip {rows[-1]['fit_ms']:.1f} ms/it, "
              f"overhead {rows[-1]['overhead']:+.1f} %, bookkeeping alone {rows[-1]['book_ms']:.2f} ms/it "
              f"({rows[-1]['book_share']:.1f} % of plain), torch defaults {rows[-1]['defaults_ms']:.1f} ms/it", flush=True)
    text = table(rows, device, args.cuda_graph)
    print(text)
    if args.append_readme:
        readme = Path(__file__).with_name("README.md")
        with readme.open("a") as f:
            f.write(f"\n## DIP (`dipcourse.dip`, `benchmarks/bench_dip.py`)\n\n"
                    f"Time per iteration of the thesis network (nd = nu = [16, 32, 64, 128, 128], ns = 0, "
                    f"1,027,379 parameters), denoising, Adam lr 0.001; `fit_dip` records loss, PSNR and "
                    f"smoothed PSNR every iteration. {args.rounds} alternating rounds; overhead from the fastest round's "
                    f"{'wall' if device.type == 'cuda' else 'CPU'} time. "
                    f"Machine: {args.machine}; device {device}; torch {torch.__version__}.\n\n{text}\n")


if __name__ == "__main__":
    main()
