"""Independent runs side by side in worker processes, each on one torch thread.

A claim about DIP rests on several runs (seeds, images), and on a CPU the cheapest way to make them is
to run them next to each other: a second torch thread speeds one DIP step at 64 px up by only ~1.1×
(``benchmarks/README.md``), while two single-thread runs on two cores make twice the progress.
One thread per run has a second use: a run's floating-point path — and so its trajectory — depends on
the number of threads that share its sums, and here that number is always 1, whatever the student's
machine or ``OMP_NUM_THREADS`` says.

:func:`run_calls` runs ``function(**kwargs)`` for each call in a pool of ``workers`` processes
(started once per kernel with the "spawn" method and then reused) and returns the results in order;
one progress bar counts the iterations of all runs. Functions must be importable (module-level,
e.g. :func:`dipcourse.dip.fit_dip`) and their arguments picklable — a lambda defined in a notebook is
neither, so callbacks are not allowed here.
"""
import atexit
import contextlib
import multiprocessing
import os
import pickle
import queue
import signal
import threading
from concurrent.futures import ProcessPoolExecutor

import torch

from dipcourse import checks
from dipcourse.runs import Progress

_POOL = {"executor": None, "workers": 0, "queue": None}
REPORT_EVERY = 10   # iterations between two progress messages from a worker


def default_workers(count):
    """How many processes to use for ``count`` runs: one per core, at most one per run."""
    return max(1, min(count, os.cpu_count() or 1))


def _start_worker(progress_queue):
    """Worker start-up: one torch thread, and the queue the runs report their progress on.

    Workers ignore Ctrl-C: Jupyter's "interrupt kernel" signals the kernel's whole process group, and a worker
    killed by it would leave the pool broken for every later cell. The kernel stops them itself (:func:`run_calls`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    _WORKER["queue"] = progress_queue


_WORKER = {"queue": None}


class _Reporter:
    """A picklable callback that tells the parent process how many iterations run ``index`` has done."""

    def __init__(self, index):
        self.index, self.pending = index, 0

    def __call__(self, it):
        self.pending += 1
        if self.pending >= REPORT_EVERY:
            _WORKER["queue"].put(self.pending)
            self.pending = 0
        return False


def _call(function, kwargs, index):
    reporter = _Reporter(index)
    result = function(**kwargs, callback=reporter, progress=False)
    if reporter.pending:
        _WORKER["queue"].put(reporter.pending)
    return result


@contextlib.contextmanager
def _workers_born_deaf_to_ctrl_c():
    """Ignore SIGINT in this process while the pool starts its workers, which inherit that: a worker still
    importing torch (seconds, before :func:`_start_worker` runs) is then safe from a Ctrl-C too. Only the main
    thread may change signal handlers; elsewhere the workers rely on :func:`_start_worker` alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _executor(workers):
    """The kernel's worker pool (created on first use, re-created if a different size is asked for)."""
    if _POOL["executor"] is None or _POOL["workers"] != workers:
        shutdown()
        context = multiprocessing.get_context("spawn")
        progress_queue = context.Queue()
        _POOL.update(executor=ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                  initargs=(progress_queue,)),
                     workers=workers, queue=progress_queue)
    return _POOL["executor"], _POOL["queue"]


def shutdown(now=False):
    """Stop the worker processes (they are started again when needed); ``now`` ends the runs they are in."""
    executor = _POOL["executor"]
    if executor is None:
        return
    if now:
        # ProcessPoolExecutor cannot abandon a running call (Python < 3.14 has no terminate_workers())
        for process in list((executor._processes or {}).values()):
            process.terminate()
    executor.shutdown(wait=True, cancel_futures=True)
    _POOL.update(executor=None, workers=0, queue=None)


atexit.register(shutdown)


def run_calls(function, calls, workers=None, desc="runs", progress=True, iterations=None):
    """``[function(**kwargs) for kwargs in calls]``, computed in ``workers`` processes on one thread each.

    Args:
        function: an importable function that takes ``callback`` and ``progress`` keywords (every training
            function of the course does); the workers pass their own callback to count iterations.
        calls: a list of keyword-argument dicts, one per run.
        workers: number of processes (default: one per core, at most one per run).
        desc: label of the progress bar.
        progress: show one progress bar for all runs.
        iterations: total iterations of all runs, for the bar (default: the sum of the calls' ``iters``).
    """
    checks.function(function, "function", "run_calls", hint="a module-level function such as dipcourse.dip.fit_dip")
    calls = checks.sequence(calls, "calls", "run_calls", hint="a list of keyword-argument dicts, one per run")
    if not all(isinstance(kwargs, dict) for kwargs in calls):
        raise TypeError("run_calls: calls must be a list of dicts (the keyword arguments of each run), got "
                        f"{[type(kwargs).__name__ for kwargs in calls]}")
    if not calls:
        return []
    workers = default_workers(len(calls)) if workers is None else \
        checks.integer(workers, "workers", "run_calls", minimum=1)
    if any("callback" in kwargs for kwargs in calls):
        raise ValueError("run_calls: callbacks cannot travel to worker processes (a notebook's function is not "
                         "picklable); run with workers=1 in this process (fit_many(..., workers=0)) to use one")
    try:
        pickle.dumps((function, calls))
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise ValueError(f"run_calls: the runs' arguments must be picklable to travel to the worker processes "
                         f"({err}); use make_prox(...) priors and module-level functions, or run in this process "
                         "(fit_many(..., workers=0))") from err
    total = checks.integer(iterations, "iterations", "run_calls", minimum=0) if iterations is not None else \
        sum(checks.iters(kwargs["iters"], "run_calls") if "iters" in kwargs else 0 for kwargs in calls)
    executor, progress_queue = _executor(workers)
    bar = Progress(total, desc, progress)
    with _workers_born_deaf_to_ctrl_c():
        futures = [executor.submit(_call, function, kwargs, index) for index, kwargs in enumerate(calls)]
    try:
        while not all(future.done() for future in futures):
            try:
                bar.update(progress_queue.get(timeout=0.2))
            except queue.Empty:
                pass
        results = [future.result() for future in futures]
        while not progress_queue.empty():
            progress_queue.get_nowait()       # late messages of finished runs: the bar is full anyway
        bar.update(total - bar.done)
        return results
    except KeyboardInterrupt:
        shutdown(now=True)   # the student stopped the cell: stop its runs too, not only the waiting
        raise
    finally:
        bar.close(f"{len(calls)} runs on {workers} processes, one thread each")
