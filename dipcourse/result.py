"""What every algorithm returns (:class:`Result`) and the bookkeeping that fills it (:class:`Tracker`)."""
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from dipcourse import checks
from dipcourse.metrics import psnr_at_peak, reference_peak


@dataclass
class Result:
    """Outcome of one run.

    Attributes:
        x: final image, (C, H, W) tensor on the CPU.
        best: the image with the highest PSNR seen (needs ``ref``); the final image otherwise.
        history: dict of equal-length numpy arrays: ``"iteration"``, ``"loss"``, ``"psnr"`` (when a
            reference was given), ``"psnr_smoothed"``, ``"time_cpu"``, ``"time_wall"``, plus whatever
            the algorithm adds (e.g. ``"prox_calls"``).
        params: the settings that produced it.
        snapshots: ``{iteration: image}`` kept on request (``snapshots=(500, 1000, 2000)`` for thesis
            Fig 5); empty unless asked for.
        extras: what a method returns besides the image, e.g. SGLD's posterior-mean image or the
            early-stopping detector's choice; empty for most.
    """

    x: torch.Tensor
    best: torch.Tensor
    history: dict
    params: dict = field(default_factory=dict)
    snapshots: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    def _psnr(self):
        """The PSNR history with its NaN and −inf entries (broken iterates) as −inf, or ``None`` when no entry is
        left. +inf stays: it is an exact fit, the best PSNR there can be."""
        values = np.asarray(self.history.get("psnr", []), dtype=float)
        usable = values > -np.inf   # False for NaN too
        if not usable.any():
            return None
        return np.where(usable, values, -np.inf)

    @property
    def peak_iteration(self):
        """Iteration with the highest PSNR (the oracle stop), or ``None`` without a reference.

        NaN and −inf entries are ignored, so the peak never points at a broken iterate; +inf (an exact fit)
        counts.
        """
        values = self._psnr()
        return None if values is None else int(self.history["iteration"][int(np.argmax(values))])

    @property
    def peak_psnr(self):
        """Highest PSNR reached (NaN and −inf entries ignored), or ``None`` without a reference."""
        values = self._psnr()
        return None if values is None else float(np.max(values))

    @property
    def final_psnr(self):
        """PSNR of the last recorded iterate, or ``None`` without a reference."""
        if "psnr" not in self.history or len(self.history["psnr"]) == 0:
            return None
        return float(self.history["psnr"][-1])

    def seconds_per_iteration(self, clock="time_cpu"):
        """Median time of one iteration by ``clock`` ("time_cpu" or "time_wall").

        The median, not the mean: on a shared machine a few iterations can be slowed by other jobs.
        """
        checks.choice(clock, "clock", "Result.seconds_per_iteration", ("time_cpu", "time_wall"))
        if len(self.history[clock]) < 2:
            raise ValueError("Result.seconds_per_iteration needs a run of at least two recorded iterations")
        return float(np.median(np.diff(self.history[clock])))

    def final_median(self, key, seconds=None, clock="time_cpu"):
        """The "final" value of ``history[key]``: its median over the last 10 % of the iterations.

        The median, so that a single Adam spike near the end cannot decide a comparison of runs.
        With ``seconds``, only the iterations done within that much ``clock`` time count — a run's
        final value at the cost of another run (lesson 03 compares DIP-ADMM-v1 and v2 this way).
        """
        where = "Result.final_median"
        checks.choice(key, "key", where, tuple(self.history))
        checks.choice(clock, "clock", where, ("time_cpu", "time_wall"))
        values = np.asarray(self.history[key], dtype=float)
        done = len(values)
        if seconds is not None:
            seconds = checks.nonnegative(seconds, "seconds", where, hint=f"a time budget on the {clock} clock")
            done = max(1, int(np.searchsorted(self.history[clock], seconds, side="right")))
        if done == 0:
            raise ValueError(f"{where}: the history of {key!r} is empty")
        window = values[done - max(1, done // 10):done]
        if np.isnan(window).any():
            raise ValueError(f"{where}: history[{key!r}] has NaN entries among the last {len(window)} iterations, "
                             "whose median would be NaN; compare runs whose values are numbers throughout.")
        return float(np.median(window))


class Tracker:
    """Per-iteration bookkeeping shared by every algorithm.

    Call :meth:`step` once per iteration with the current image and any scalars (``loss``, ...).
    It records the PSNR of the image and of its running average r ← 0.9 r + 0.1 x (§4.2) when a
    reference is given, keeps the best-PSNR image, and stamps CPU and wall time since creation.
    The reference is used for reporting only; the algorithms never see it.
    """

    def __init__(self, ref=None, smoothing=0.9, params=None):
        self.ref = None if ref is None else torch.as_tensor(ref).detach()
        # the reference is checked once here (finite, positive peak); each step then needs only the error, and
        # a method's other PSNRs (ADMM's psnr_x) use this same peak
        self.peak = None if self.ref is None else reference_peak(checks.tensor(self.ref, "ref", "Tracker"))
        self.smoothing = smoothing
        self.params = dict(params or {})
        self.rows = {}
        self.smoothed = None
        self.best = None
        self.best_psnr = -np.inf
        self._t0_cpu = time.process_time()
        self._t0_wall = time.perf_counter()

    def _append(self, key, value):
        self.rows.setdefault(key, []).append(value)

    def step(self, iteration, x, **scalars):
        """Record iteration ``iteration`` whose current image is ``x``; ``scalars`` are floats."""
        x = x.detach()
        self.smoothed = x.clone() if self.smoothed is None else \
            self.smoothing * self.smoothed + (1.0 - self.smoothing) * x
        self._append("iteration", int(iteration))
        for key, value in scalars.items():
            self._append(key, float(value))
        if self.ref is not None:
            ref = self.ref.to(x.device)
            value = psnr_at_peak(ref, x, self.peak)
            self._append("psnr", value)
            self._append("psnr_smoothed", psnr_at_peak(ref, self.smoothed, self.peak))
            if value > self.best_psnr:
                self.best_psnr = value
                self.best = x.clone()
        self._append("time_cpu", time.process_time() - self._t0_cpu)
        self._append("time_wall", time.perf_counter() - self._t0_wall)

    def history(self):
        """The recorded values as a dict of numpy arrays."""
        return {key: np.asarray(values) for key, values in self.rows.items()}

    def result(self, x, **extra_params):
        """Package the run as a :class:`Result` whose final image is ``x``."""
        x = x.detach().cpu()
        best = x if self.best is None else self.best.detach().cpu()
        return Result(x=x, best=best, history=self.history(), params={**self.params, **extra_params})
