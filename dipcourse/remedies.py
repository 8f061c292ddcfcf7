"""Lesson 07's remedies for DIP's overfitting, run side by side: one spec per remedy, runs, and their summary.

A remedy is described by a *spec*: a pair ``(method, options)`` or a function ``sigma -> (method, options)``,
where ``method`` names a function of :data:`dipcourse.batched.METHODS` (``"dip"`` for :func:`dipcourse.dip.fit_dip`
and its remedy options — weight decay (eq. 13), SGLD (eq. 14), SURE (eq. 17), a deep decoder as the network —
``"admm_v2"``, ``"deep_red"``, …) and ``options`` are its keyword arguments (``lr``, ``net_kwargs``,
``weight_decay``, …). The lesson writes its remedies as specs once; its runs and its widget
(:func:`dipcourse.widgets.remedies_explorer`) are made from them:

* :func:`fit_remedies` — every remedy on every measurement, in worker processes;
* :func:`estimate` — what a remedy returns (the posterior mean for the samplers, else the last iterate);
* :func:`summarise`, :func:`print_summary`, :func:`against` — the table of peak, final, fall, estimate and cost.
"""
import copy

import numpy as np

from dipcourse import checks
from dipcourse.metrics import psnr


def remedy_spec(spec, sigma):
    """The ``(method, options)`` of a remedy ``spec`` at noise level σ (``spec(sigma)`` when it is a function)."""
    from dipcourse.batched import METHODS

    made = spec(sigma) if callable(spec) else spec
    if not (isinstance(made, tuple) and len(made) == 2 and isinstance(made[1], dict)):
        raise TypeError(f"a remedy is (method, options) or a function sigma -> (method, options); got {made!r}")
    method, options = made
    checks.choice(method, "method", "remedy", tuple(METHODS))
    return method, options


def run_method(method, **kwargs):
    """``METHODS[method](**kwargs)``: one run of one of the course's methods (a worker process's entry point)."""
    from dipcourse.batched import METHODS

    return METHODS[method](**kwargs)


def remedy_call(spec, sigma, A, b, iters, ref=None, seed=0):
    """The keyword arguments of one run of the remedy ``spec`` on ``b`` (options deep-copied, so a given network
    is trained as a fresh copy and a stopper starts empty): ``run_method(**remedy_call(...))`` runs it."""
    method, options = remedy_spec(spec, sigma)
    return dict(copy.deepcopy(options), method=method, A=A, b=b, iters=iters, ref=ref, seed=seed)


def fit_remedy(callback, spec, A, b, iters, sigma, ref=None, seed=0):
    """One run of the remedy ``spec`` in this process, calling ``callback`` each iteration; a Result."""
    return run_method(**remedy_call(spec, sigma, A, b, iters, ref=ref, seed=seed), callback=callback, progress=False)


def fit_remedies(remedies, ops, bs, iters, sigma, refs=None, seeds=None, names=None, workers=None, progress=True):
    """Every remedy on every measurement: ``{name: [Result per measurement]}``.

    ``remedies`` maps names to specs (see :func:`remedy_spec`); ``names`` picks some (default all). Run k of
    each remedy uses ``ops[k]``, ``bs[k]``, ``refs[k]`` and ``seeds[k]`` (default k) — the same seed gives DIP
    and a remedy built on it the same θ₀ and z. All the runs, of all the remedies, go to one pool of worker
    processes with one torch thread each (:func:`dipcourse.parallel.run_calls`; ``workers=0``: one after the
    other here), so two cores stay busy to the end and the numbers do not depend on the thread count.
    ``iters`` is one number or ``{name: number}``.
    """
    names = list(remedies) if names is None else list(names)
    unknown = [name for name in names if name not in remedies]
    if unknown:
        raise ValueError(f"fit_remedies: unknown remedies {unknown}; known: {list(remedies)}")
    bs = checks.sequence(bs, "bs", "fit_remedies", hint="one measurement per run")
    ops = checks.sequence(ops, "ops", "fit_remedies", length=len(bs))
    refs = [None] * len(bs) if refs is None else checks.sequence(refs, "refs", "fit_remedies", length=len(bs))
    seeds = list(range(len(bs))) if seeds is None else checks.sequence(seeds, "seeds", "fit_remedies", length=len(bs))
    steps = {name: checks.iters(iters[name] if isinstance(iters, dict) else iters, "fit_remedies") for name in names}
    calls = [remedy_call(remedies[name], sigma, A, b, steps[name], ref=ref, seed=seed)
             for name in names for A, b, ref, seed in zip(ops, bs, refs, seeds)]
    if workers == 0:
        results = [run_method(**call, progress=progress) for call in calls]
    else:
        from dipcourse import parallel

        results = parallel.run_calls(run_method, calls, workers=workers, progress=progress,
                                     desc=f"{len(names)} remedies × {len(bs)}")
    count = len(bs)
    return {name: results[i * count:(i + 1) * count] for i, name in enumerate(names)}


REMEDY_COLOURS = ("k", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
                  "tab:cyan", "tab:blue", "tab:gray")


def remedy_colour(names, name):
    """A fixed colour per remedy (by its place in ``names``), so a remedy keeps its colour in every picture."""
    names = list(names)
    return REMEDY_COLOURS[names.index(name) % len(REMEDY_COLOURS)] if name in names else "0.5"


def estimate(result):
    """What a remedy hands back: the mean of the samples after the burn-in for the samplers (SGLD), else the
    last iterate."""
    return result.extras.get("posterior_mean", result.x)


SUMMARY_KEYS = ("peak", "peak_at", "final", "fall", "estimate", "ms")


def summarise(runs, refs):
    """``{remedy: {key: [value per image]}}`` for the runs of :func:`fit_remedies`: the peak PSNR and its
    iteration, the final PSNR, the fall between them, the PSNR of the :func:`estimate` (dB) and the CPU time per
    iteration (ms, one thread)."""
    refs = checks.sequence(refs, "refs", "summarise")
    rows = {}
    for name, results in runs.items():
        checks.sequence(results, f"runs[{name!r}]", "summarise", length=len(refs))
        rows[name] = dict(
            peak=[r.peak_psnr for r in results], peak_at=[r.peak_iteration for r in results],
            final=[r.final_psnr for r in results], fall=[r.peak_psnr - r.final_psnr for r in results],
            estimate=[psnr(x, estimate(r)) for x, r in zip(refs, results)],
            ms=[1000 * r.seconds_per_iteration("time_cpu") for r in results])
    return rows


def against(rows, name, key, baseline="DIP"):
    """Per image, remedy ``name``'s ``key`` minus the baseline's (e.g. its final PSNR minus DIP's)."""
    return [a - b for a, b in zip(rows[name][key], rows[baseline][key])]


def print_summary(rows, baseline="DIP"):
    """The summary as a text table, means over the images; cost also relative to the baseline."""
    print(f"{'remedy':20s} {'peak dB':>8s} {'peak at':>8s} {'final dB':>9s} {'fall dB':>8s} {'estimate dB':>12s} "
          f"{'ms/it':>6s} {'× ' + baseline:>7s}   (means over {len(rows[baseline]['peak'])} images)")
    for name, row in rows.items():
        mean = {key: np.mean(row[key]) for key in SUMMARY_KEYS}
        print(f"{name:20s} {mean['peak']:8.2f} {mean['peak_at']:8.0f} {mean['final']:9.2f} {mean['fall']:8.2f} "
              f"{mean['estimate']:12.2f} {mean['ms']:6.1f} {mean['ms'] / np.mean(rows[baseline]['ms']):7.2f}")
