"""What the loop of every iterative method shares: its bookkeeping (:class:`Run`), the callback protocol
(:class:`Iterate`), the progress bar (:class:`Progress`) and the error a diverged run ends with.

ISTA, FISTA, plug-and-play ADMM, DIP, DIP-ADMM-v1/v2 and the remedies of lesson 07 differ in their
update steps, written in their own modules line by line after the thesis's algorithm boxes. Everything
around the steps is the same and lives here: count the iterations and show a progress bar, record the
history of each run (:class:`dipcourse.result.Tracker`), keep snapshots, stop when a value turns NaN or
infinite, and call the user's callback.

**The callback protocol.** Every method takes ``callback``; after each recorded iteration it is called
as ``callback(it)`` with an :class:`Iterate`, and returning ``True`` stops the run::

    def watch(it):
        print(it.iteration, it.values["psnr"])    # what was just recorded: loss, psnr, psnr_smoothed, ...
        return it.values["loss"] < 1.0             # stop once the loss is small

A run of K networks side by side (:func:`dipcourse.batched.fit_many`) calls it once per network and
iteration, with ``it.run`` = k; any ``True`` stops them all.
"""
import math
import time
from dataclasses import dataclass, field

import torch

from dipcourse import checks
from dipcourse.result import Tracker


class DivergedError(FloatingPointError):
    """A run whose loss or image turned NaN or infinite: its result would be meaningless, so it stops."""


@dataclass
class Iterate:
    """What a callback sees after iteration ``iteration`` (valid only during the call; ``clone()`` to keep).

    Attributes:
        iteration: the iteration just recorded (the number in the history).
        x: the current image of this run, (C, H, W).
        values: this iteration's recorded values, e.g. ``{"loss": ..., "psnr": ..., "psnr_smoothed": ...}``.
        state: the method's other variables, e.g. ``{"x": ..., "u": ..., "net": ...}`` for the ADMM variants.
        run: which run of a batch (0 for a single run).
    """

    iteration: int
    x: torch.Tensor
    values: dict
    state: dict = field(default_factory=dict)
    run: int = 0


def _in_notebook():
    """Whether we run in a Jupyter kernel (where a widget progress bar can be shown)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


class Progress:
    """A progress bar that ends as one line of text.

    In a notebook it is ``tqdm``'s widget bar while the run goes and, once it ends, the same output is
    replaced by a one-line summary ("DIP: 1500 iterations in 40 s"), so an executed notebook stores that
    line rather than a frozen bar. Elsewhere it is ``tqdm``'s text bar, removed at the end.
    """

    def __init__(self, total, desc, enabled=True, unit="iterations"):
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self.bar = self.handle = None
        self.start = time.perf_counter()
        if not enabled:
            return
        if _in_notebook():
            from IPython.display import display
            from tqdm.notebook import tqdm as notebook_tqdm

            self.bar = notebook_tqdm(total=total, desc=desc, display=False)
            self.handle = display(self.bar.container, display_id=True)
        else:
            from tqdm.std import tqdm as text_tqdm

            self.bar = text_tqdm(total=total, desc=desc, leave=False)

    def update(self, n=1):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def close(self, note=""):
        """End the bar; in a notebook leave the summary line in its place."""
        if self.bar is None:
            return
        self.bar.close()
        if self.handle is not None:
            seconds = time.perf_counter() - self.start
            summary = f"{self.desc}: {self.done} of {self.total} {self.unit} in {seconds:.0f} s" + \
                (f" ({note})" if note else "")
            self.handle.update(_PlainText(summary))


class _PlainText:
    """A display object whose only representation is plain text (the progress bar's closing line)."""

    def __init__(self, text):
        self.text = text

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.text}


def _per_run(value, k):
    """Entry k of a per-run value: a tensor or list with one entry per run, or one value for all."""
    if isinstance(value, torch.Tensor):
        return float(value.reshape(-1)[k]) if value.numel() > 1 else float(value)
    if isinstance(value, (list, tuple)):
        return value[k]
    return value


class Run:
    """The bookkeeping of one run, or of K independent runs that step together.

    Iterate over it for the iteration numbers (with a progress bar), call :meth:`record` once per
    iteration, and :meth:`results` at the end::

        run = Run("ISTA", [ref], iters, params=dict(...), callback=callback, first=1)
        for t in run:
            x = ...                                  # the method's update
            if run.record(t, [x], loss=F(x)):
                break
        return run.results([x])[0]

    Args:
        name: the method's name (progress bar, messages).
        refs: one ground truth (or ``None``) per run, for PSNR reporting only.
        iters: number of iterations.
        params: the settings, stored in every :class:`dipcourse.Result`.
        callback: ``callback(Iterate) -> bool``; see the module docstring.
        progress: show a progress bar.
        smoothing: factor of the running average r ← smoothing·r + (1 − smoothing)·x (§4.2).
        snapshots: iteration numbers whose images to keep in ``Result.snapshots``.
        first: the number of the first iteration (0 for DIP, which records the image before each update;
            1 for methods that record the iterate after the t-th update).
        hint: what to try when the run diverges, for the message.
    """

    def __init__(self, name, refs, iters, *, params=None, callback=None, progress=True, smoothing=0.9,
                 snapshots=(), first=0, hint=""):
        self.name, self.iters, self.first, self.hint = name, iters, first, hint
        params = dict(params or {}, threads=torch.get_num_threads())
        self.trackers = [Tracker(ref, smoothing=smoothing, params=params) for ref in refs]
        self.callback = callback
        self.keep = {int(t) for t in snapshots}
        self.snapshots = [{} for _ in refs]
        self.stopped_at = None
        self.progress = Progress(iters, name, progress)

    def __iter__(self):
        try:
            for t in range(self.first, self.first + self.iters):
                yield t
        finally:
            self.progress.close("stopped" if self.stopped_at is not None else "")

    def record(self, t, images, state=None, **values):
        """Record iteration ``t``: ``images[k]`` is run k's image; each value is one number for all runs or
        one per run (a list or a tensor of K entries). Returns ``True`` when the callback asks to stop."""
        stop = False
        for k, tracker in enumerate(self.trackers):
            image = images[k].detach()
            row = {key: _per_run(value, k) for key, value in values.items()}
            self._check_finite(t, k, image, row)
            tracker.step(t, image, **row)
            if t in self.keep:
                self.snapshots[k][t] = image.cpu().clone()
            if self.callback is not None:
                latest = {key: column[-1] for key, column in tracker.rows.items()}
                run_state = {key: (value[k] if isinstance(value, (list, tuple)) else value)
                             for key, value in (state or {}).items()}
                stop = bool(self.callback(Iterate(t, image, latest, run_state, k))) or stop
        if stop:
            self.stopped_at = t
        self.progress.update()
        return stop

    def check_output(self, t, k, name, value, like):
        """``value``, what the caller's function ``name`` (a prox, a denoiser) returned at iteration ``t`` of run
        ``k`` for the input ``like``, checked: a tensor of like's shape (``ValueError``) with finite values (else
        the run stops as diverged). Checked where it is made, because a wrong shape would be broadcast into a
        silently wrong image, and a NaN would reach the network and be blamed on the learning rate a step later."""
        checks.tensor(value, name, f"{self.name}, iteration {t}{self._which(k)}", shape=like.shape, finite=False,
                      hint="the function must return an image of its input's shape")
        if not bool(torch.isfinite(value).all()):
            hint = "Its input was finite, so look at the function and its settings." if bool(
                torch.isfinite(like).all()) else self.hint
            self._diverged(t, k, [name], hint)
        return value

    def _check_finite(self, t, k, image, row):
        bad = [key for key, value in row.items() if isinstance(value, float) and not math.isfinite(value)]
        if not bool(torch.isfinite(image).all()):
            bad.append("image")
        if bad:
            self._diverged(t, k, bad, self.hint)

    def _which(self, k):
        return f" (run {k})" if len(self.trackers) > 1 else ""

    def _diverged(self, t, k, bad, hint):
        raise DivergedError(f"{self.name} diverged at iteration {t}{self._which(k)}: {', '.join(bad)} became NaN or "
                            f"infinite, so the run was stopped. {hint}".rstrip())

    def results(self, images, **params):
        """One :class:`dipcourse.Result` per run, whose final image is ``images[k]``."""
        results = []
        for k, tracker in enumerate(self.trackers):
            result = tracker.result(images[k], stopped_at=self.stopped_at, **params)
            result.snapshots = self.snapshots[k]
            results.append(result)
        return results
