"""The part of a training widget that has nothing to do with widgets: runs, stop, cache, one run at a time.

A slider whose effect needs training (a DIP run) cannot block the kernel: the Stop button and the other
sliders must keep working. :class:`TrainingRunner` runs ``train(callback, **values)`` in a background
thread (or in the caller's thread, :meth:`TrainingRunner.run_now`) and takes care of

* **the callback protocol** — ``train`` passes ``callback`` on to the course's methods (``fit_dip(...,
  callback=callback)``), which call it with a :class:`dipcourse.runs.Iterate` each iteration; the runner
  keeps the reported values in a :class:`LiveCurve` and returns ``True`` (stop) once Stop was pressed or a
  newer selection replaced the run;
* **stopping** — a new request stops the run it replaces; a stopped or replaced run never reports over a
  newer one (:meth:`TrainingRunner.is_current`, checked under :attr:`TrainingRunner.lock`);
* **one run per kernel** — two runs would only share the CPU and both be slow, so a run of any runner
  stops the kernel's previous one and waits for it before it starts;
* **caching** — finished runs are kept by their values (:func:`cache_key`); stopped runs are not;
* **throttling** — the listener hears of progress at most once every ``refresh_s`` seconds.

What is shown is the listener's business (:class:`dipcourse.widgets.views.LiveTrainer` is one): it gets
``on_started(run)``, ``on_progress(run)``, ``on_finished(run, result)`` and ``on_failed(run, error)`` — from the
training thread, so it must be thread-safe. Tests drive the runner without ipywidgets.
"""
import threading
import time
from dataclasses import dataclass, field

import numpy as np


def cache_key(values):
    """Hashable key of a dict of slider values; floats are rounded to 8 significant digits so that
    a slider's float noise (0.1 vs 0.10000000000000002) does not miss the cache."""
    def normal(v):
        return float(f"{v:.8g}") if isinstance(v, (float, np.floating)) else v
    return tuple(sorted((k, normal(v)) for k, v in values.items()))


@dataclass
class LiveCurve:
    """What a run has reported so far: ``iterations`` and one list per reported value."""

    values: dict
    total: int = None
    iterations: list = field(default_factory=list)
    scalars: dict = field(default_factory=dict)

    def append(self, iteration, scalars):
        self.iterations.append(int(iteration))
        for key, value in scalars.items():
            self.scalars.setdefault(key, []).append(float(value))

    @property
    def done(self):
        """Iterations reported so far."""
        return len(self.iterations)


@dataclass
class TrainingRun:
    """One training request. ``id`` grows with each request of a runner."""

    id: int
    values: dict
    curve: LiveCurve
    stop: threading.Event = field(default_factory=threading.Event)
    stopped: bool = False
    thread: threading.Thread = None
    last_report: float = 0.0


# The kernel's newest run of any runner: only one trains at a time.
_KERNEL = {"run": None}
_KERNEL_LOCK = threading.Lock()


def _claim_kernel(run):
    """Make ``run`` the kernel's one training run; stop and return the run it replaces (or ``None``)."""
    with _KERNEL_LOCK:
        previous, _KERNEL["run"] = _KERNEL["run"], run
    if previous is not None:
        previous.stop.set()
    return previous


class Listener:
    """What a runner tells its view (all called from the training thread; the default does nothing)."""

    def on_started(self, run):
        pass

    def on_progress(self, run):
        pass

    def on_finished(self, run, result):
        pass

    def on_failed(self, run, error):
        pass


class TrainingRunner:
    """Runs ``train(callback, **values) -> result`` for a widget (see the module docstring).

    Args:
        train: the training function; it must pass ``callback`` to the course's method (or call it with a
            :class:`dipcourse.runs.Iterate` per iteration) and return early when it returns ``True``.
        total: iterations per run (int, or ``total(**values)``), for progress bars.
        refresh_s: at most one ``listener.progress`` per this many seconds.
        listener: the view (a :class:`Listener`).
    """

    def __init__(self, train, total=None, refresh_s=0.5, listener=None):
        self.train = train
        self.total = total
        self.refresh_s = refresh_s
        self.listener = listener or Listener()
        self.cache = {}
        self.last_error = None
        self.lock = threading.Lock()
        self._count = 0
        self._current = None
        self._last_thread = None

    @property
    def busy(self):
        """``True`` while a background run is training."""
        run = self._current
        return run is not None and run.thread is not None and run.thread.is_alive()

    @property
    def current(self):
        return self._current

    def is_current(self, run):
        return self._current is run

    def cached(self, values):
        """The cached result for ``values``, or ``None``."""
        return self.cache.get(cache_key(values))

    def store(self, values, result):
        """Put a finished ``result`` for ``values`` in the cache (e.g. one computed earlier)."""
        self.cache[cache_key(values)] = result

    def supersede(self, run=None):
        """Make ``run`` the current one (or none) and stop the previous run; return the previous."""
        with self.lock:
            previous, self._current = self._current, run
        if previous is not None:
            previous.stop.set()
        return previous

    def start(self, values):
        """Train for ``values`` in a background thread and return the thread (``None`` for a cached value,
        which the caller shows instead)."""
        if cache_key(values) in self.cache:
            self.supersede()
            return None
        run = self._new_run(values)
        self.supersede(run)
        previous = _claim_kernel(run)
        run.thread = threading.Thread(target=self._in_background, args=(run, previous),
                                      name=f"dipcourse-run-{id(self)}-{run.id}", daemon=True)
        self._last_thread = run.thread
        self.listener.on_started(run)
        run.thread.start()
        return run.thread

    def run_now(self, values):
        """Train for ``values`` in the calling thread; returns the result (``None`` if training raised)."""
        run = self._new_run(values)
        self.supersede(run)
        previous = _claim_kernel(run)
        if previous is not None and previous.thread is not None:
            previous.thread.join()
        self.listener.on_started(run)
        return self._execute(run)

    def stop(self):
        """Ask the running training to stop (its callback returns ``True`` from now on)."""
        run = self._current
        if run is not None:
            run.stop.set()

    def wait(self, timeout=None):
        """Block until the latest background run ends (also one that was stopped or replaced)."""
        if self._last_thread is not None:
            self._last_thread.join(timeout)

    # -- internals ----------------------------------------------------------------------------

    def _new_run(self, values):
        with self.lock:
            self._count += 1
            total = self.total(**values) if callable(self.total) else self.total
            return TrainingRun(id=self._count, values=dict(values), curve=LiveCurve(dict(values), total))

    def _in_background(self, run, previous):
        # One training at a time: the replaced run stops at its next callback; wait for it here, in this
        # worker thread, so that the kernel's main thread never blocks.
        if previous is not None and previous.thread is not None:
            previous.thread.join()
        if run.stop.is_set():
            return
        self._execute(run)

    def _execute(self, run):
        def callback(it):
            run.curve.append(it.iteration, it.values)
            if run.stop.is_set():
                run.stopped = True
                return True
            now = time.perf_counter()
            if now - run.last_report >= self.refresh_s and self.is_current(run):
                run.last_report = now
                self.listener.on_progress(run)
            return False

        run.last_report = time.perf_counter()
        try:
            result = self.train(callback, **run.values)
        except Exception as error:  # shown by the view: a slider must never print a traceback
            run.stopped = True
            self.last_error = error
            self.listener.on_failed(run, error)
            return None
        if not run.stopped:
            self.store(run.values, result)
        self.listener.on_finished(run, result)
        return result
