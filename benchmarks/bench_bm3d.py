"""BM3D options and an affordable DIP+BM3D: what the ``bm3d`` package offers, and prox reuse in DIP-ADMM-v2.

Three parts (issue 13, item 1), each printing markdown tables:

``--part options``  The ``bm3d`` package's own settings, called the way ``dipcourse.priors.bm3d_denoise``
    calls it (``bm3d.bm3d_rgb(z, sigma)``, profile ``'np'``, opponent colour space) and every other way
    the package allows: its profiles (``'refilter'``, ``'vn'``, ``'vn_old'``, ``'high'``, ``'deb'``,
    ``BM3DProfileLC()``), the hard-thresholding stage alone, the YCbCr colour transform, three grey
    calls per channel, one joint 3-channel call (block matching on the first channel), and the
    profile's speed knobs: ``nf = 0`` (the package's "conventional mode": no exact transform-domain
    variances and no block-matching correction, which only matter for correlated noise), ``gamma = 0``,
    ``nf = 16`` and ``num_threads = 1``. Two settings, five images at 64×64×3:
    (a) denoising at σ = 25/255 with the matching σ; (b) the prox setting of DIP-ADMM-v2: a noisy image
    at σ = 10/255 denoised with the thesis's σ = 0.05 (§3.3). Every option runs once per image and
    setting, options interleaved (the first one rotates) so that a shared machine slows them alike; the
    time is the median over those calls (wall and CPU = ``time.process_time``, all threads). PSNR is
    against the clean image and against the default's output. Then the best few at 32, 64 and 128 px.

``--part study``  DIP-ADMM-v2 (Algorithm 2) with BM3D as the prox, lesson 04's setting: 64×64×3,
    ``RandomMask(keep=0.5, seed=0)``, ``measure(A, x, 10/255, seed=100)``, ``SkipNet(ns=[16]*5)`` seeded
    with 0, Adam lr 0.01, ρ = 1, BM3D σ = 0.05. The exact run calls BM3D every iteration; the variants
    refresh it every k iterations and in between reuse either (i) the stale output x = D(v_s) or
    (ii) the residual x = v_t − (v_s − D(v_s)). Also DIP alone, PnP-BM3D (Algorithm 3) from the
    zero-filled start and from a PnP-TV warm start, the default profile as a cross-check, and a
    32×32×3 version with a 3-level network. Curves are ``psnr_smoothed`` (r ← 0.9 r + 0.1 x, §4.2).

``--part costs``  Cost per call / iteration of everything lesson 04 runs (DIP step, v2 step, PnP step,
    TV, NLM, BM3D options), items alternating, at 1 and 2 torch threads.

The study runs with ``--threads 1`` on a shared 2-core machine: with two torch threads and other jobs
on the cores, OpenMP's waiting threads spin and a 64 px DIP step took 35 ms to 2 s instead of ~17 ms.

Usage (the runs in benchmarks/README.md)::

    python benchmarks/bench_bm3d.py                              # options table, 64 px, 5 images
    python benchmarks/bench_bm3d.py --part options --sizes 32 64 128 --size-images chelsea astronaut coffee
    python benchmarks/bench_bm3d.py --part study --threads 1 --study-images chelsea --study-sizes 64 32 \
        --study-knobs nf 0 --study-knobs num_threads 1 --ks 5 10 20 --default-check chelsea
    python benchmarks/bench_bm3d.py --part costs [--cost-rounds 5]
"""
import argparse
import dataclasses
import os
import time

import bm3d
import numpy as np
import torch
from bm3d import BM3DStages

from dipcourse import admm, data, operators, priors, solvers
from dipcourse.config import seed_everything
from dipcourse.dip import SkipNet, fit_dip
from dipcourse.metrics import psnr
from machine import describe

IMAGES = ["chelsea", "astronaut", "coffee", "rocket", "camera"]
PROFILES = {"np": bm3d.BM3DProfile, "refilter": bm3d.BM3DProfileRefilter, "vn": bm3d.BM3DProfileVN,
            "vn_old": bm3d.BM3DProfileVNOld, "high": bm3d.BM3DProfileHigh, "deb": bm3d.BM3DProfileDeb,
            "lc": bm3d.BM3DProfileLC}
STAGES = {"all": BM3DStages.ALL_STAGES, "ht": BM3DStages.HARD_THRESHOLDING}
SETTINGS = {"a": (25 / 255, 25 / 255), "b": (10 / 255, 0.05)}   # (noise σ of the input, σ given to BM3D)


# ----------------------------------------------------------------------------------------------
# BM3D called every way the package allows
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Option:
    """One way to call BM3D on an (H, W, 3) image.

    colour: ``"opp"`` / ``"YCbCr"`` -- ``bm3d_rgb``'s colour transform, then one multichannel ``bm3d``
    call (matching on the luminance); ``"per-channel"`` -- three grey ``bm3d`` calls on R, G, B;
    ``"joint"`` -- one ``bm3d`` call on the RGB array (matching on R). profile: a key of PROFILES.
    stage: ``"all"`` (hard thresholding + Wiener) or ``"ht"`` (hard thresholding only). knobs:
    attributes of the profile object to override, e.g. ``(("nf", 0),)``.
    """
    colour: str = "opp"
    profile: str = "np"
    stage: str = "all"
    knobs: tuple = ()

    @property
    def label(self):
        parts = [self.colour, self.profile]
        if self.stage != "all":
            parts.append("HT only")
        parts += [f"{k}={v}" for k, v in self.knobs]
        return " ".join(parts)

    def profile_object(self):
        profile = PROFILES[self.profile]()
        for key, value in self.knobs:
            setattr(profile, key, value)          # BM3DProfile refuses unknown names
        return profile


DEFAULT = Option()                                # = bm3d.bm3d_rgb(z, sigma): what bm3d_denoise does today
WHITE = (("nf", 0),)                              # conventional (white-noise) mode
ONE_THREAD = (("num_threads", 1),)

OPTIONS = [
    DEFAULT,
    Option(profile="refilter"), Option(profile="vn"), Option(profile="vn_old"), Option(profile="high"),
    Option(profile="deb"), Option(profile="lc"),
    Option(colour="YCbCr"), Option(colour="per-channel"), Option(colour="joint"),
    Option(stage="ht"), Option(profile="lc", stage="ht"),
    Option(knobs=(("gamma", 0),)), Option(knobs=(("nf", 16),)),
    Option(knobs=WHITE), Option(profile="vn", knobs=WHITE), Option(profile="lc", knobs=WHITE),
    Option(stage="ht", knobs=WHITE), Option(profile="lc", stage="ht", knobs=WHITE),
    Option(colour="per-channel", knobs=WHITE), Option(colour="joint", knobs=WHITE),
    Option(knobs=WHITE + ONE_THREAD), Option(profile="lc", knobs=WHITE + ONE_THREAD),
]
BEST = [DEFAULT, Option(profile="lc"), Option(knobs=WHITE), Option(profile="lc", knobs=WHITE),
        Option(knobs=WHITE + ONE_THREAD)]


def denoise_hwc(z, sigma, option):
    """BM3D of the (H, W, 3) float64 image ``z`` with noise σ ``sigma``, the way ``option`` says."""
    profile, stage = option.profile_object(), STAGES[option.stage]
    if option.colour in ("opp", "YCbCr"):
        # bm3d.bm3d_rgb, spelled out so that the stage can be chosen: colour transform (normalised per
        # channel), σ scaled per channel, one multichannel call, inverse transform.
        planes, top, bottom, scale, _ = bm3d.rgb_to(z, option.colour)
        out = bm3d.bm3d(planes, sigma * np.sqrt(scale), profile, stage_arg=stage)
        return bm3d.rgb_to(out, option.colour, True, top, bottom)[0]
    if option.colour == "per-channel":
        return np.stack([bm3d.bm3d(z[..., c], sigma, profile, stage_arg=stage) for c in range(z.shape[-1])], -1)
    if option.colour == "joint":
        return bm3d.bm3d(z, sigma, profile, stage_arg=stage)
    raise ValueError(f"unknown colour mode {option.colour!r}")


def to_hwc(x):
    return np.ascontiguousarray(x.detach().cpu().double().numpy().transpose(1, 2, 0))


def denoise_torch(x, sigma, option):
    """``denoise_hwc`` for a (C, H, W) tensor, back as float32 (C, H, W), as bm3d_denoise returns it."""
    out = denoise_hwc(to_hwc(x), sigma, option)
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))).to(dtype=x.dtype)


def psnr_np(ref, img):
    """Eq. 35 on (H, W, C) arrays: peak = max of the reference."""
    return float(20 * np.log10(ref.max() / np.sqrt(np.mean((ref - img) ** 2))))


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def noisy_inputs(names, size):
    """Per image: clean (H, W, 3) and, per setting, the noisy input (noise drawn by ``measure``)."""
    cases = []
    for k, name in enumerate(names):
        x = data.load_image(name, size=size)
        A = operators.Identity(x.shape)
        noisy = {s: to_hwc(operators.measure(A, x, noise, seed=200 + k)) for s, (noise, _) in SETTINGS.items()}
        cases.append((name, to_hwc(x), noisy))
    return cases


def measure_options(options, names, size, repeats=1):
    """Every option on every (image, setting), interleaved; returns per option the calls' records."""
    cases = noisy_inputs(names, size)
    name0, clean0, noisy0 = cases[0]
    failed = {}
    for option in options:                                              # warm-up, untimed
        try:
            denoise_hwc(noisy0["b"], SETTINGS["b"][1], option)
        except Exception as error:                                      # a profile the package cannot run
            failed[option] = f"{type(error).__name__}: {str(error)[:90]}"
    options = [o for o in options if o not in failed]
    records = {o: [] for o in options}
    records["failed"] = failed
    turn = 0
    for _ in range(repeats):
        for name, clean, noisy in cases:
            for setting, (_, sigma) in SETTINGS.items():
                z = noisy[setting]
                order = options[turn % len(options):] + options[:turn % len(options)]
                turn += 1
                outputs = {}
                for option in order:
                    out, wall, cpu = timed(lambda: denoise_hwc(z, sigma, option))
                    outputs[option] = out
                    records[option].append(dict(image=name, setting=setting, wall=wall, cpu=cpu,
                                                psnr=psnr_np(clean, out)))
                reference = outputs.get(DEFAULT)
                if reference is None:
                    reference = denoise_hwc(z, sigma, DEFAULT)
                for option in order:
                    rec = records[option][-1]
                    rec["vs_default"] = (np.inf if option == DEFAULT
                                         else psnr_np(reference, outputs[option]))
                    rec["default_psnr"] = psnr_np(clean, reference)
    return records


def summarise(records):
    """Median wall/CPU per call and, per setting, mean PSNR, mean Δ vs default, min PSNR vs default's output."""
    row = dict(wall=float(np.median([r["wall"] for r in records])),
               cpu=float(np.median([r["cpu"] for r in records])))
    for setting in SETTINGS:
        rs = [r for r in records if r["setting"] == setting]
        row[setting] = dict(psnr=float(np.mean([r["psnr"] for r in rs])),
                            delta=float(np.mean([r["psnr"] - r["default_psnr"] for r in rs])),
                            worst=float(np.min([r["psnr"] - r["default_psnr"] for r in rs])),
                            vs_default=float(np.min([r["vs_default"] for r in rs])))
    return row


def options_table(rows, size, names):
    base = rows[DEFAULT]
    lines = [f"BM3D options at {size}x{size}x3 on {', '.join(names)}: median time per call over all calls "
             f"({len(names)} images x 2 settings); PSNR = mean over the images; Δ = mean (worst) change vs "
             "the default; 'vs default' = PSNR of the output against the default's output (lowest image).",
             "",
             "| option | wall ms | CPU ms | CPU speed-up | (a) σ=25/255: PSNR dB | Δ dB (worst) | vs default dB "
             "| (b) prox σ=10/255, BM3D σ=0.05: PSNR dB | Δ dB (worst) | vs default dB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for option, r in rows.items():
        cells = [option.label + (" (default)" if option == DEFAULT else ""), f"{1e3 * r['wall']:.0f}",
                 f"{1e3 * r['cpu']:.0f}", f"{base['cpu'] / r['cpu']:.1f}x"]
        for s in SETTINGS:
            v = r[s]
            vs = "—" if option == DEFAULT else f"{v['vs_default']:.1f}"
            cells += [f"{v['psnr']:.2f}", f"{v['delta']:+.2f} ({v['worst']:+.2f})", vs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sizes_table(per_size, names):
    lines = [f"Best few at several sizes ({', '.join(names)}, both settings): median wall / CPU ms per call, "
             "mean Δ PSNR vs the default at that size in (a) and (b).", "",
             "| option | " + " | ".join(f"{s} px wall / CPU ms | {s} px Δ(a) / Δ(b) dB" for s in per_size) + " |",
             "|---|" + "---:|---:|" * len(per_size)]
    for option in next(iter(per_size.values())):
        cells = [option.label]
        for size, rows in per_size.items():
            r = rows[option]
            cells += [f"{1e3 * r['wall']:.0f} / {1e3 * r['cpu']:.0f}",
                      f"{r['a']['delta']:+.2f} / {r['b']['delta']:+.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_equivalence():
    """The spelled-out opponent-colour call must be bm3d_rgb itself (up to the C code's float32)."""
    x = data.load_image("astronaut", size=64)
    z = to_hwc(operators.measure(operators.Identity(x.shape), x, 10 / 255, seed=1))
    ours = denoise_hwc(z, 0.05, DEFAULT)
    theirs = bm3d.bm3d_rgb(z, 0.05)
    via_package = to_hwc(priors.bm3d_denoise(torch.from_numpy(z.transpose(2, 0, 1).copy()).float(), 0.05))
    return float(np.abs(ours - theirs).max()), float(np.abs(ours - via_package).max())


def run_options(args):
    diff_rgb, diff_pkg = check_equivalence()
    print(f"check: max |spelled-out opp np − bm3d.bm3d_rgb| = {diff_rgb:.1e}, "
          f"− dipcourse.priors.bm3d_denoise = {diff_pkg:.1e} (float32 C code, threads)\n")
    threads = torch.get_num_threads()
    records = measure_options(OPTIONS, args.images, 64, args.repeats)
    failed = records.pop("failed")
    rows = {o: summarise(r) for o, r in records.items()}
    print(options_table(rows, 64, args.images))
    for option, error in failed.items():
        print(f"\n{option.label}: fails in this bm3d ({bm3d_version()}) with numpy {np.__version__}: {error}")
    assert torch.get_num_threads() == threads, "bm3d changed torch's thread count"
    print(f"\n(torch threads before and after the BM3D calls: {threads}, {torch.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.2f})\n")
    others = [s for s in args.sizes if s != 64]
    if others:
        per_size = {}
        for size in args.sizes:
            if size == 64 and not args.remeasure_64 and not args.size_images:
                per_size[size] = rows
            else:
                records = measure_options(BEST, args.size_images or args.images, size)
                records.pop("failed")
                per_size[size] = {o: summarise(r) for o, r in records.items()}
            per_size[size] = {o: per_size[size][o] for o in BEST}
        print(sizes_table(per_size, args.size_images or args.images))
        print(f"\n(load average {os.getloadavg()[0]:.2f})\n")


# ----------------------------------------------------------------------------------------------
# DIP-ADMM-v2 with a refreshed BM3D prox
# ----------------------------------------------------------------------------------------------

class RefreshedBM3D:
    """``prox(v, rho)`` for DIP-ADMM-v2 / PnP that calls BM3D only every ``every`` calls.

    reuse: ``"stale"`` -- between refreshes return the last output D(v_s) as it is;
    ``"residual"`` -- return v − (v_s − D(v_s)): subtract the noise BM3D removed at the last refresh.
    With ``every=1`` both are the exact prox. ρ is ignored (a denoiser, §3.2.4). Counts the calls,
    the BM3D calls and the time spent inside BM3D.
    """

    def __init__(self, option, sigma=0.05, every=1, reuse="residual"):
        if reuse not in ("stale", "residual"):
            raise ValueError(f"reuse must be 'stale' or 'residual', got {reuse!r}")
        self.option, self.sigma, self.every, self.reuse = option, sigma, int(every), reuse
        self.calls = self.refreshes = 0
        self.cpu = self.wall = 0.0
        self._out = self._residual = None

    def __call__(self, v, rho=1.0):
        v = v.detach()
        if self.calls % self.every == 0:
            out, wall, cpu = timed(lambda: denoise_torch(v, self.sigma, self.option))
            self.wall += wall
            self.cpu += cpu
            self.refreshes += 1
            self._out, self._residual = out, v - out
        elif self.reuse == "stale":
            out = self._out
        else:
            out = v - self._residual
        self.calls += 1
        return out


def lesson_problem(name, size):
    ref = data.load_image(name, size=size)
    A = operators.RandomMask(ref.shape, keep=0.5, seed=0)
    return ref, A, operators.measure(A, ref, 10 / 255, seed=100)


def lesson_net(size):
    seed_everything(0)
    if size >= 64:
        return SkipNet(out_channels=3, ns=[16] * 5)
    return SkipNet(out_channels=3, nd=[16, 32, 64], ns=[16] * 3)


def curve_stats(result, exact=None):
    """Peak (over the finite part), final, fall of psnr_smoothed; against ``exact`` over the same iterations."""
    h = result.history
    curve = np.asarray(h["psnr_smoothed"], dtype=float)
    bad = np.nonzero(~np.isfinite(curve))[0]
    finite = curve[:bad[0]] if len(bad) else curve
    i = int(np.argmax(finite))
    stats = dict(peak=float(finite[i]), peak_at=int(h["iteration"][i]), final=float(curve[-1]),
                 fall=float(finite[i] - curve[-1]), final_raw=float(h["psnr"][-1]),
                 cpu=float(h["time_cpu"][-1]), wall=float(h["time_wall"][-1]), iters=len(curve),
                 diverged_at=int(h["iteration"][bad[0]]) if len(bad) else None, curve=curve)
    if exact is not None:
        other = np.asarray(exact.history["psnr_smoothed"], dtype=float)[:len(curve)]
        stats["max_gap"] = float(np.max(np.abs(finite - other[:len(finite)])))
        stats["exact_peak"] = float(np.max(other))
        stats["exact_final"] = float(other[-1])
    return stats


def run_dip_bm3d(ref, A, b, size, iters, option, every=1, reuse="residual", lr=0.01):
    prox = RefreshedBM3D(option, 0.05, every, reuse)
    result = admm.dip_admm_v2(A, b, prox, iters, rho=1.0, lr=lr, ref=ref, seed=0, net=lesson_net(size),
                              progress=False)
    return result, prox


def plateau(result, tol=0.1):
    """First iteration after which the (raw) PSNR stays within ``tol`` dB of its last value."""
    curve = np.asarray(result.history["psnr"], dtype=float)
    outside = np.nonzero(np.abs(curve - curve[-1]) > tol)[0]
    return int(result.history["iteration"][outside[-1] + 1]) if len(outside) else int(result.history["iteration"][0])


def run_study(args):
    option = Option(profile=args.study_profile, knobs=tuple((k, int(v)) for k, v in args.study_knobs))
    print(f"BM3D in the study: {option.label}, σ = 0.05; torch threads {torch.get_num_threads()}; "
          f"DIP-ADMM-v2 lr {args.lr}, ρ = 1, "
          f"{args.iters} iterations; load average at start {os.getloadavg()[0]:.2f}\n")
    rows, pnp_rows, cost_rows = [], [], []
    for size in args.study_sizes:
        for name in args.study_images:
            ref, A, b = lesson_problem(name, size)
            # DIP alone, then the exact run and the variants, interleaving rules (stale, residual) per k.
            dip = fit_dip(A, b, args.iters, net=lesson_net(size), lr=args.lr, ref=ref, seed=0, progress=False)
            rows.append(dict(image=name, size=size, method="DIP alone", calls=0, stats=curve_stats(dip),
                             bm3d_cpu=0.0, load=os.getloadavg()[0]))
            exact, prox = run_dip_bm3d(ref, A, b, size, args.iters, option, lr=args.lr)
            rows.append(dict(image=name, size=size, method="DIP+BM3D exact (k=1)", calls=prox.refreshes,
                             stats=curve_stats(exact, exact), bm3d_cpu=prox.cpu, load=os.getloadavg()[0]))
            ks = args.ks if size == args.study_sizes[0] or args.variants_all_sizes else []
            for k in ks:
                for reuse in ("stale", "residual"):
                    if reuse == "stale" and args.stale_ks is not None and k not in args.stale_ks:
                        continue
                    res, prox = run_dip_bm3d(ref, A, b, size, args.iters, option, k, reuse, lr=args.lr)
                    rows.append(dict(image=name, size=size, method=f"k={k}, {reuse}", calls=prox.refreshes,
                                     stats=curve_stats(res, exact), bm3d_cpu=prox.cpu, load=os.getloadavg()[0]))
            if size == args.study_sizes[0] and name in args.default_check:
                res, prox = run_dip_bm3d(ref, A, b, size, args.default_iters or args.iters, DEFAULT,
                                         args.default_k, "residual", lr=args.lr)
                rows.append(dict(image=name, size=size, method=f"k={args.default_k}, residual, DEFAULT profile",
                                 calls=prox.refreshes, stats=curve_stats(res, exact), bm3d_cpu=prox.cpu,
                                 load=os.getloadavg()[0]))
            if size == args.study_sizes[0]:
                pnp_rows += run_pnp(name, ref, A, b, option, args)
                cost_rows.append(prox_costs(name, A, b, option))
            print(f"  done {name} {size} px (load {os.getloadavg()[0]:.2f})", flush=True)
    if args.save:
        np.savez_compressed(args.save, **{f"{r['image']}_{r['size']}_{r['method']}": r["stats"]["curve"]
                                          for r in rows})
    print()
    print(variants_table(rows, option))
    print()
    print(pnp_table(pnp_rows))
    print()
    print(costs_table(cost_rows, rows))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


def run_pnp(name, ref, A, b, option, args):
    out = []
    tv = solvers.pnp_admm(A, b, priors.make_prox("tv", lam=0.01), rho=1.0, iters=args.tv_iters, ref=ref)
    out.append(dict(image=name, method=f"PnP-TV, {args.tv_iters} its, zero-filled start", result=tv, calls=0,
                    bm3d_cpu=0.0))
    for label, x0, iters, opt in [("zero-filled start", None, args.pnp_iters, option),
                                  ("PnP-TV warm start", tv.x, args.pnp_warm_iters, option),
                                  ("PnP-TV warm start, DEFAULT profile", tv.x, args.pnp_default_iters, DEFAULT)]:
        if iters <= 0 or (opt == DEFAULT and name not in args.default_check):
            continue
        prox = RefreshedBM3D(opt, 0.05, 1)
        res = solvers.pnp_admm(A, b, prox, rho=1.0, iters=iters, ref=ref, x0=x0)
        out.append(dict(image=name, method=f"PnP-BM3D, {label}", result=res, calls=prox.refreshes,
                        bm3d_cpu=prox.cpu))
    return out


def prox_costs(name, A, b, option, repeats=5):
    """CPU and wall per call of the lesson's other priors and of BM3D, on the zero-filled image."""
    v = A.adjoint(b)
    cases = {"TV (prox-tv, λ 0.01)": priors.make_prox("tv", lam=0.01),
             "NLM (thesis settings)": priors.make_prox("nlm"),
             f"BM3D {option.label}": lambda v, rho: denoise_torch(v, 0.05, option)}
    out = {}
    for label, fn in cases.items():
        fn(v, 1.0)
        times = [timed(lambda: fn(v, 1.0))[1:] for _ in range(repeats)]
        out[label] = (float(np.median([t[0] for t in times])), float(np.median([t[1] for t in times])))
    return dict(image=name, costs=out)


def variants_table(rows, option):
    lines = [f"DIP-ADMM-v2 + BM3D ({option.label}, σ 0.05): exact vs refreshed every k iterations, "
             "psnr_smoothed; Δ vs the exact run of the same image and size; CPU s = whole run "
             "(network steps + BM3D); BM3D CPU s = inside the denoiser; a shorter run is compared with the "
             "exact run over its own iterations; peak = over the iterations before any NaN.", "",
             "| image | px | method | BM3D calls | peak dB (at it) | final dB | fall dB | Δpeak | Δfinal | "
             "max gap to exact dB | CPU s | BM3D CPU s | wall s | ms CPU / it | load |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    exact = {(r["image"], r["size"]): r for r in rows if r["method"].startswith("DIP+BM3D exact")}
    for r in rows:
        s, e = r["stats"], exact[(r["image"], r["size"])]["stats"]
        gap = f"{s['max_gap']:.2f}" if "max_gap" in s and not r["method"].startswith("DIP+BM3D exact") else "—"
        same = r["method"].startswith("DIP+BM3D exact") or r["method"] == "DIP alone"
        dpk = "—" if same else f"{s['peak'] - s['exact_peak']:+.2f}"
        dfn = "—" if same else (f"{s['final'] - s['exact_final']:+.2f}" if s["diverged_at"] is None
                                 else f"NaN from it {s['diverged_at']}")
        method = r["method"] + (f", {s['iters']} its" if s["iters"] != e["iters"] else "")
        lines.append(f"| {r['image']} | {r['size']} | {method} | {r['calls']} | {s['peak']:.2f} ({s['peak_at']}) "
                     f"| {s['final']:.2f} | {s['fall']:.2f} | {dpk} | {dfn} | {gap} | {s['cpu']:.1f} | "
                     f"{r['bm3d_cpu']:.1f} | {s['wall']:.1f} | {1e3 * s['cpu'] / s['iters']:.0f} | {r['load']:.1f} |")
    return "\n".join(lines)


def pnp_table(rows):
    lines = ["Plug-and-play ADMM (Algorithm 3), ρ = 1: plateau = first iteration after which the PSNR stays "
             "within 0.1 dB of its last value.", "",
             "| image | method | iterations | BM3D calls | final PSNR dB | best PSNR dB | plateau at it | "
             "CPU s | BM3D CPU s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        res = r["result"]
        h = res.history
        lines.append(f"| {r['image']} | {r['method']} | {len(h['iteration'])} | {r['calls']} | {h['psnr'][-1]:.2f} | "
                     f"{np.max(h['psnr']):.2f} | {plateau(res)} | {h['time_cpu'][-1]:.1f} | {r['bm3d_cpu']:.1f} |")
    return "\n".join(lines)


def costs_table(cost_rows, rows):
    lines = ["Cost per call on the zero-filled 64 px image (median of 5; wall / CPU ms), and per DIP step "
             "(DIP alone: whole run / iterations).", "", "| image | item | wall ms | CPU ms |", "|---|---|---:|---:|"]
    for c in cost_rows:
        for label, (wall, cpu) in c["costs"].items():
            lines.append(f"| {c['image']} | {label} | {1e3 * wall:.1f} | {1e3 * cpu:.1f} |")
    for r in rows:
        if r["method"] == "DIP alone":
            s = r["stats"]
            net = "ns=16x5" if r["size"] >= 64 else "3 levels"
            lines.append(f"| {r['image']} | DIP step at {r['size']} px (SkipNet {net}) "
                         f"| {1e3 * s['wall'] / s['iters']:.1f} | {1e3 * s['cpu'] / s['iters']:.1f} |")
    return "\n".join(lines)


def run_costs(args):
    """Per-call / per-iteration cost of everything lesson 04 runs, alternating items, at 1 and 2 threads."""
    ref, A, b = lesson_problem("chelsea", 64)
    ref32, A32, b32 = lesson_problem("chelsea", 32)
    v, v32 = A.adjoint(b), A32.adjoint(b32)
    tv, nlm = priors.make_prox("tv", lam=0.01), priors.make_prox("nlm")
    free = lambda x, rho: x.detach().clone()                            # a prox that costs nothing

    def per_iteration(run):
        return run().seconds_per_iteration("time_wall"), run().seconds_per_iteration("time_cpu")

    def per_call(fn, calls):
        times = [timed(fn)[1:] for _ in range(calls)]
        return float(np.median([t[0] for t in times])), float(np.median([t[1] for t in times]))

    items = {
        "DIP step, 64 px, SkipNet ns=16x5": lambda: per_iteration(lambda: fit_dip(
            A, b, args.cost_iters, net=lesson_net(64), lr=0.01, ref=ref, seed=0, progress=False)),
        "DIP-ADMM-v2 step without the prox, 64 px": lambda: per_iteration(lambda: admm.dip_admm_v2(
            A, b, free, args.cost_iters, lr=0.01, ref=ref, seed=0, net=lesson_net(64), progress=False)),
        "DIP step, 32 px, SkipNet 3 levels": lambda: per_iteration(lambda: fit_dip(
            A32, b32, args.cost_iters, net=lesson_net(32), lr=0.01, ref=ref32, seed=0, progress=False)),
        "PnP iteration without the prox, 64 px": lambda: per_iteration(lambda: solvers.pnp_admm(
            A, b, free, rho=1.0, iters=4 * args.cost_iters, ref=ref)),
        "TV prox (prox-tv, λ 0.01), 64 px": lambda: per_call(lambda: tv(v, 1.0), 5),
        "NLM prox (thesis settings), 64 px": lambda: per_call(lambda: nlm(v, 1.0), 5),
    }
    for option in BEST:
        items[f"BM3D {option.label}, 64 px"] = (lambda o=option: per_call(
            lambda: denoise_torch(v, 0.05, o), 1 if o in (DEFAULT, BEST[1]) else 3))
    for option in BEST[2:]:
        items[f"BM3D {option.label}, 32 px"] = lambda o=option: per_call(lambda: denoise_torch(v32, 0.05, o), 3)
    names = list(items)
    results = {(n, t): [] for n in names for t in args.cost_threads}
    original = torch.get_num_threads()
    for rnd in range(args.cost_rounds):
        for t in (args.cost_threads if rnd % 2 == 0 else args.cost_threads[::-1]):
            torch.set_num_threads(t)
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for n in order:
                results[(n, t)].append(items[n]())
    torch.set_num_threads(original)
    lines = [f"Cost per iteration / call (median over {args.cost_rounds} alternating rounds of the per-round "
             "medians), chelsea, σ = 10/255 input; torch threads as given (BM3D runs its own threads). "
             f"Load average at the end {os.getloadavg()[0]:.2f}.", "",
             "| item | " + " | ".join(f"{t} thread(s): wall / CPU ms" for t in args.cost_threads) + " |",
             "|---|" + "---:|" * len(args.cost_threads)]
    for n in names:
        cells = []
        for t in args.cost_threads:
            rs = results[(n, t)]
            cells.append(f"{1e3 * np.median([r[0] for r in rs]):.1f} / {1e3 * np.median([r[1] for r in rs]):.1f}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["options", "study", "costs", "all"], default="options")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the study")
    parser.add_argument("--cost-threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cost-rounds", type=int, default=5)
    parser.add_argument("--cost-iters", type=int, default=12)
    parser.add_argument("--size-images", nargs="+", default=None,
                        help="images for the sizes table (default: --images)")
    parser.add_argument("--images", nargs="+", default=IMAGES, help="images of the options table")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64],
                        help="sizes for the best few (64 is reused from the main table)")
    parser.add_argument("--remeasure-64", action="store_true", help="re-time the best few at 64 px too")
    parser.add_argument("--repeats", type=int, default=1, help="passes over the images in the options table")
    parser.add_argument("--study-images", nargs="+", default=["chelsea", "astronaut"])
    parser.add_argument("--study-sizes", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--study-profile", default="np", choices=sorted(PROFILES))
    parser.add_argument("--study-knobs", nargs=2, action="append", metavar=("NAME", "VALUE"), default=None,
                        help="profile overrides for the study's BM3D (default: nf 0)")
    parser.add_argument("--iters", type=int, default=600)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--variants-all-sizes", action="store_true", help="run the k variants at every size")
    parser.add_argument("--default-check", nargs="*", default=["chelsea"],
                        help="images on which the default profile is run too (DIP k=default-k residual, PnP)")
    parser.add_argument("--save", default=None, help="write the psnr_smoothed curves of the study to this .npz")
    parser.add_argument("--stale-ks", type=int, nargs="*", default=None,
                        help="k values of the stale rule (default: --ks)")
    parser.add_argument("--default-k", type=int, default=20)
    parser.add_argument("--default-iters", type=int, default=300,
                        help="iterations of the default-profile DIP run (compared over its length)")
    parser.add_argument("--tv-iters", type=int, default=200)
    parser.add_argument("--pnp-iters", type=int, default=200)
    parser.add_argument("--pnp-warm-iters", type=int, default=60)
    parser.add_argument("--pnp-default-iters", type=int, default=10)
    args = parser.parse_args()
    if args.study_knobs is None:
        args.study_knobs = [("nf", "0")]
    print(f"Machine: {describe()}; load average {os.getloadavg()[0]:.2f}; bm3d {bm3d_version()}; "
          f"dipcourse from {os.path.dirname(admm.__file__)}\n")
    if args.part in ("options", "all"):
        run_options(args)
    if args.part in ("costs", "all"):
        run_costs(args)
    if args.part in ("study", "all"):
        if args.threads:
            torch.set_num_threads(args.threads)
        run_study(args)


def bm3d_version():
    from importlib.metadata import version
    return version("bm3d")


if __name__ == "__main__":
    main()
