"""The lessons' sliders: one widget for cheap effects, one for effects that need training.

Two kinds of slider appear in the course (COURSE.md, "Widgets"):

* :class:`InstantExplorer` -- the effect is cheap (a few dozen PnP-ADMM iterations). On every slider
  change it calls an ordinary function ``compute(**values)`` and draws its result with
  ``draw(result, fig)`` at once.
* :class:`LiveTrainer` -- the effect needs training (a DIP run). A slider change, or the Run button,
  starts ``train(report, **values)`` in a background thread, so the kernel stays responsive: the
  Stop button and the other sliders keep working during a run. ``train`` calls
  ``report(iteration, psnr=..., loss=...)`` once per iteration; the widget moves its progress bar,
  redraws the curve every ``refresh_s`` seconds, and ``report`` returns ``True`` once Stop was pressed
  (or a newer selection replaced the run), which is the signal for ``train`` to return early.
  Finished runs are cached by their slider values, so moving back to a value already run is instant.

Both render their matplotlib figures (explicit :class:`~matplotlib.figure.Figure` objects on the Agg
canvas, never pyplot's global state) to PNG bytes shown in an ``ipywidgets.Image``. That works the
same in JupyterLab, classic Notebook and Colab, also when the update comes from a thread.

Run headless (nbval, ``jupyter nbconvert --execute``), nothing trains until a person acts: a new
:class:`LiveTrainer` shows the result passed as ``initial`` (or one stored with :meth:`LiveTrainer.store`)
or a "move the slider or press Run" placeholder. Notebooks and tests that want a run inside the cell
call :meth:`LiveTrainer.run_now` (synchronous) or :meth:`LiveTrainer.run` then :meth:`LiveTrainer.wait`.

Errors raised by ``compute`` or ``train`` (say ``ValueError`` for a negative σ) appear as a message in
the widget (the label with CSS class ``dipcourse-message``), never as a traceback; the exception is
kept in ``.last_error``.

CSS classes, for browser tests (``page.locator(".dipcourse-slider-rho")``):

=============================  ============================================================
``dipcourse-widget``           every explorer's outer box; it also gets ``dipcourse-<name>``
``dipcourse-slider-<key>``     the slider of parameter ``<key>``, e.g. ``dipcourse-slider-rho``
``dipcourse-plot``             every plot image; it also gets ``dipcourse-plot-<name>``
``dipcourse-message``          the error message (empty when all is well)
``dipcourse-status``           a trainer's status line ("training ...", "done ...", "stopped ...")
``dipcourse-progress``         a trainer's progress bar
``dipcourse-run``              a trainer's Run button
``dipcourse-stop``             a trainer's Stop button
=============================  ============================================================

The lesson builders at the end (:func:`cs_explorer`, :func:`sigma_explorer`, :func:`rho_explorer`,
:func:`subspace_explorer`) are thin: their compute and train parts are functions of the other
modules, imported inside each builder.
"""
import html
import io
import threading
import time
from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Matplotlib's Agg rendering shares font caches between figures; one lock keeps a trainer's
# background thread and an explorer in the kernel's main thread from rendering at the same time.
_RENDER_LOCK = threading.Lock()

PLACEHOLDER_TEXT = "Move the slider or press Run to train."


# ----------------------------------------------------------------------------------------------
# Small building blocks
# ----------------------------------------------------------------------------------------------

def render_png(fill, figsize=(8.0, 3.2), dpi=96):
    """Draw with ``fill(fig)`` on a fresh Agg figure and return the PNG bytes."""
    with _RENDER_LOCK:
        fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        fill(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    return buffer.getvalue()


def make_slider(key, value, min, max, step=None, *, description=None, log=False, integer=False,
                readout_format=None):
    """A slider for parameter ``key`` that reports only on release (``continuous_update=False``).

    ``log=True`` gives a :class:`~ipywidgets.FloatLogSlider` whose ``min``/``max`` are the values
    themselves (not their exponents); ``integer=True`` an :class:`~ipywidgets.IntSlider`. The slider
    gets the CSS class ``dipcourse-slider-<key>``.
    """
    common = dict(description=description or key, continuous_update=False,
                  style={"description_width": "12em"}, layout=widgets.Layout(width="32em"))
    if integer:
        slider = widgets.IntSlider(value=int(value), min=int(min), max=int(max), step=int(step or 1),
                                   **common)
    elif log:
        lo, hi = np.log10(min), np.log10(max)
        slider = widgets.FloatLogSlider(value=value, base=10, min=lo, max=hi,
                                        step=step or (hi - lo) / 40,
                                        readout_format=readout_format or ".3g", **common)
    else:
        slider = widgets.FloatSlider(value=value, min=min, max=max, step=step or (max - min) / 100,
                                     readout_format=readout_format or ".3g", **common)
    slider.add_class(f"dipcourse-slider-{key}")
    return slider


def cache_key(values):
    """Hashable key of a dict of slider values; floats are rounded to 8 significant digits so that
    a slider's float noise (0.1 vs 0.10000000000000002) does not miss the cache."""
    def normal(v):
        return float(f"{v:.8g}") if isinstance(v, (float, np.floating)) else v
    return tuple(sorted((k, normal(v)) for k, v in values.items()))


SYMBOLS = {"sigma": "σ", "rho": "ρ", "lam": "λ"}


def describe(values, sliders=None):
    """``"σ = 0.1, p = 20"`` -- the slider descriptions (else symbols or keys) with their values."""
    parts = []
    for key, value in values.items():
        label = sliders[key].description if sliders and key in sliders else SYMBOLS.get(key, key)
        parts.append(f"{label} = {value:.3g}" if isinstance(value, float) else f"{label} = {value}")
    return ", ".join(parts)


def error_html(exc):
    """The message shown in place of a traceback."""
    text = str(exc) if isinstance(exc, (ValueError, TypeError, ImportError)) \
        else f"{type(exc).__name__}: {exc}"
    return f'<span style="color:#b00020">&#9888; {html.escape(text)}</span>'


def draw_placeholder(fig, text=PLACEHOLDER_TEXT):
    """A blank figure that says what to do."""
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=13, color="0.3")
    ax.set_axis_off()


def show_image(ax, img, title=None):
    """Show a (C, H, W) image in [0, 1] on ``ax`` (grey for one channel), axes hidden."""
    from dipcourse.plotting import to_display

    ax.imshow(to_display(img), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def _sliders_box(sliders):
    return widgets.VBox(list(sliders.values()))


def _plot_image(name, figsize, dpi):
    # Shown at the figure's own pixel width (a VBox would otherwise stretch it, blurred), shrunk to
    # fit narrow windows.
    width = f"{round(figsize[0] * dpi)}px"
    image = widgets.Image(format="png", layout=widgets.Layout(width=width, max_width="100%", height="auto"))
    image.add_class("dipcourse-plot")
    image.add_class(f"dipcourse-plot-{name}")
    return image


def _message_label():
    label = widgets.HTML("")
    label.add_class("dipcourse-message")
    return label


# ----------------------------------------------------------------------------------------------
# Instant redraw
# ----------------------------------------------------------------------------------------------

class InstantExplorer(widgets.VBox):
    """Sliders whose effect is cheap: recompute and redraw at once on every change.

    Args:
        compute: ``compute(**values) -> result``, an ordinary (tested) function of the slider values.
        draw: ``draw(result, fig)`` draws ``result`` on a fresh matplotlib ``Figure``.
        sliders: ``{key: slider}``; ``key`` is the keyword ``compute`` receives (see :func:`make_slider`).
        name: used in the CSS classes ``dipcourse-<name>`` and ``dipcourse-plot-<name>``.
        show_sliders: ``False`` when another widget already shows these sliders (see :func:`rho_explorer`).

    The first result is computed when the widget is built (cheap, and finishes inside the cell).
    Results are cached by slider values. ``.result`` is the result on display, ``.cache`` maps
    :func:`cache_key` of the values to results, ``.last_error`` holds the last exception shown.
    """

    def __init__(self, compute, draw, sliders, *, name="explorer", figsize=(8.0, 3.2), dpi=96,
                 show_sliders=True):
        self.compute = compute
        self.draw = draw
        self.sliders = dict(sliders)
        self.name = name
        self.figsize, self.dpi = figsize, dpi
        self.cache = {}
        self.result = None
        self.last_error = None
        self.image = _plot_image(name, figsize, dpi)
        self.message = _message_label()
        children = ([_sliders_box(self.sliders)] if show_sliders else []) + [self.message, self.image]
        super().__init__(children)
        self.add_class("dipcourse-widget")
        self.add_class(f"dipcourse-{name}")
        for slider in self.sliders.values():
            slider.observe(self._on_change, names="value")
        self.update()

    @property
    def values(self):
        """Current slider values, ``{key: value}``."""
        return {key: slider.value for key, slider in self.sliders.items()}

    def _on_change(self, _change):
        self.update()

    def update(self):
        """Compute (or fetch from the cache) the result for the current values and redraw it.

        Returns the result, or ``None`` when ``compute`` raised (the message is then shown).
        """
        values = self.values
        key = cache_key(values)
        try:
            if key not in self.cache:
                self.cache[key] = self.compute(**values)
            result = self.cache[key]
            png = render_png(lambda fig: self.draw(result, fig), self.figsize, self.dpi)
        except Exception as exc:  # shown in the widget: a slider must never print a traceback
            self.last_error = exc
            self.message.value = error_html(exc)
            return None
        self.result = result
        self.image.value = png
        self.message.value = ""
        return result


# ----------------------------------------------------------------------------------------------
# Live training
# ----------------------------------------------------------------------------------------------

@dataclass
class LiveCurve:
    """What a run has reported so far: ``iterations`` and one list per reported scalar."""

    values: dict
    total: int = None
    iterations: list = field(default_factory=list)
    scalars: dict = field(default_factory=dict)

    def append(self, iteration, scalars):
        self.iterations.append(int(iteration))
        for key, value in scalars.items():
            self.scalars.setdefault(key, []).append(float(value))


@dataclass
class _Run:
    """One training request. ``id`` grows with each request: only the newest run may draw."""

    id: int
    values: dict
    curve: LiveCurve
    stop: threading.Event = field(default_factory=threading.Event)
    stopped: bool = False
    thread: threading.Thread = None
    last_refresh: float = 0.0


# The newest training run of any LiveTrainer in this kernel. Only one run trains at a time (two
# would only share the CPU and both be slow): a new run stops the one it replaces and waits for it.
_ACTIVE_RUN = {"run": None}
_ACTIVE_LOCK = threading.Lock()


def _claim_training(run):
    """Make ``run`` the kernel's one training run; stop and return the run it replaces (or ``None``)."""
    with _ACTIVE_LOCK:
        previous, _ACTIVE_RUN["run"] = _ACTIVE_RUN["run"], run
    if previous is not None:
        previous.stop.set()
    return previous


def draw_live_curve(curve, fig):
    """Default live plot: PSNR (raw and smoothed, if reported; else the loss) against iteration."""
    ax = fig.add_subplot()
    keys = [k for k in ("psnr", "psnr_smoothed") if k in curve.scalars] or list(curve.scalars)[:1]
    for key in keys:
        ax.plot(curve.iterations, curve.scalars[key], label=key.replace("_", " "))
    if keys == ["loss"]:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR (dB)" if keys and keys[0].startswith("psnr") else (keys[0] if keys else ""))
    if curve.total:
        ax.set_xlim(0, curve.total)
    if keys:
        ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    done = curve.iterations[-1] + 1 if curve.iterations else 0
    ax.set_title(f"training {describe(curve.values)}: {done}" + (f"/{curve.total}" if curve.total else ""),
                 fontsize=10)


def draw_result(result, fig):
    """Default final plot of a :class:`dipcourse.Result`: PSNR curve with its peak, final image."""
    history = result.history
    ax_curve = fig.add_subplot(1, 2, 1)
    if "psnr" in history:
        ax_curve.plot(history["iteration"], history["psnr"], label="PSNR of x")
        if "psnr_smoothed" in history:
            ax_curve.plot(history["iteration"], history["psnr_smoothed"], label="PSNR of smoothed r")
        ax_curve.plot([result.peak_iteration], [result.peak_psnr], "v", color="k",
                      label=f"peak {result.peak_psnr:.2f} dB")
        ax_curve.set_ylabel("PSNR (dB)")
        ax_curve.legend(loc="lower right", fontsize=8)
    else:
        ax_curve.semilogy(history["iteration"], history["loss"], label="loss")
        ax_curve.set_ylabel("loss")
    ax_curve.set_xlabel("iteration")
    ax_curve.grid(alpha=0.3)
    final = f"final {result.final_psnr:.2f} dB" if result.final_psnr is not None else "final image"
    show_image(fig.add_subplot(1, 2, 2), result.x, final)


class LiveTrainer(widgets.VBox):
    """Sliders whose effect needs training: background runs with progress, live curve, Stop and cache.

    Args:
        train: ``train(report, **values) -> result``. It must call ``report(iteration, **scalars)``
            (e.g. ``psnr=..., loss=...``) once per iteration and return early (with what it has)
            when ``report`` returns ``True``.
        sliders: ``{key: slider}`` as for :class:`InstantExplorer`.
        draw: ``draw(result, fig)`` for a finished (or stopped) run; default :func:`draw_result`.
        draw_live: ``draw_live(curve, fig)`` during a run (a :class:`LiveCurve`); default
            :func:`draw_live_curve`.
        total: iterations per run (int, or ``total(**values)``), for the progress bar and x-axis.
        initial: a finished result for the sliders' starting values (precomputed in the notebook),
            shown at once; otherwise the widget shows a placeholder and trains nothing.
        run_on_change: a slider change starts training (else only the Run button does).
        refresh_s: at most one redraw of the live curve per this many seconds (throttle).
        name: used in the CSS classes ``dipcourse-<name>`` and ``dipcourse-plot-<name>``.

    Only one run trains at a time, in this widget and across all trainers of the kernel: a new
    request stops the old one (which then says "stopped"), and a stopped or superseded run never
    draws over a newer selection. Stopped runs are shown but not cached.
    """

    def __init__(self, train, sliders, *, draw=draw_result, draw_live=draw_live_curve, total=None,
                 initial=None, run_on_change=True, refresh_s=0.5, name="trainer",
                 figsize=(8.0, 3.2), dpi=96, show_sliders=True):
        self.train = train
        self.sliders = dict(sliders)
        self.draw = draw
        self.draw_live = draw_live
        self.total = total
        self.run_on_change = run_on_change
        self.refresh_s = refresh_s
        self.name = name
        self.figsize, self.dpi = figsize, dpi
        self.cache = {}
        self.result = None
        self.last_error = None
        self._lock = threading.Lock()
        self._run_count = 0
        self._current = None
        self._last_thread = None
        self._silent = False

        self.image = _plot_image(name, figsize, dpi)
        self.message = _message_label()
        self.status = widgets.HTML("")
        self.status.add_class("dipcourse-status")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress",
                                              layout=widgets.Layout(width="300px"))
        self.progress.add_class("dipcourse-progress")
        self.run_button = widgets.Button(description="Run", icon="play", button_style="primary",
                                         tooltip="train with the current slider values")
        self.run_button.add_class("dipcourse-run")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True,
                                          tooltip="stop the running training")
        self.stop_button.add_class("dipcourse-stop")
        self.run_button.on_click(lambda _button: self.run())
        self.stop_button.on_click(lambda _button: self.stop())

        controls = widgets.HBox([self.run_button, self.stop_button, self.progress])
        children = ([_sliders_box(self.sliders)] if show_sliders else []) + \
            [controls, self.status, self.message, self.image]
        super().__init__(children)
        self.add_class("dipcourse-widget")
        self.add_class(f"dipcourse-{name}")
        for slider in self.sliders.values():
            slider.observe(self._on_change, names="value")

        if initial is not None:
            self.store(self.values, initial)
        self._show_selection()

    # -- public API ---------------------------------------------------------------------------

    @property
    def values(self):
        """Current slider values, ``{key: value}``."""
        return {key: slider.value for key, slider in self.sliders.items()}

    @property
    def busy(self):
        """``True`` while a background run is training."""
        run = self._current
        return run is not None and run.thread is not None and run.thread.is_alive()

    def store(self, values, result):
        """Put a finished ``result`` for slider ``values`` in the cache (e.g. one computed earlier)."""
        self.cache[cache_key(values)] = result
        if cache_key(values) == cache_key(self.values):
            self._show_selection()

    def run(self, values=None):
        """Start training for ``values`` (default: the sliders') in a background thread.

        A cached result is shown at once instead. Returns the background thread, or ``None``.
        """
        values = dict(self.values if values is None else values)
        if cache_key(values) in self.cache:
            self._supersede()
            self._show_cached(values)
            return None
        run = self._new_run(values)
        self._supersede(run)
        previous = _claim_training(run)
        run.thread = threading.Thread(target=self._train_in_background, args=(run, previous),
                                      name=f"dipcourse-{self.name}-{run.id}", daemon=True)
        self._last_thread = run.thread
        self._show_started(run)
        run.thread.start()
        return run.thread

    def run_now(self, values=None, *, force=False):
        """Train for ``values`` (a dict of slider updates) in the calling thread and show the result.

        The sliders move to ``values`` without starting a background run; a cached result is
        returned without training unless ``force``. For notebooks (the cell finishes when the run
        does) and tests. Returns the result, or ``None`` if training raised (the message is shown).
        """
        self._set_sliders(values or {})
        values = self.values
        if not force and cache_key(values) in self.cache:
            self._supersede()
            return self._show_cached(values)
        run = self._new_run(values)
        self._supersede(run)
        previous = _claim_training(run)
        if previous is not None and previous.thread is not None:
            previous.thread.join()
        self._show_started(run)
        return self._execute(run)

    def stop(self):
        """Ask the running training to stop (its ``report`` returns ``True`` from now on)."""
        run = self._current
        if run is not None:
            run.stop.set()

    def wait(self, timeout=None):
        """Block until this widget's latest background run ends (also one that was stopped or
        replaced by a cached selection); return the result on display."""
        if self._last_thread is not None:
            self._last_thread.join(timeout)
        return self.result

    # -- running ------------------------------------------------------------------------------

    def _new_run(self, values):
        with self._lock:
            self._run_count += 1
            total = self.total(**values) if callable(self.total) else self.total
            return _Run(id=self._run_count, values=dict(values), curve=LiveCurve(dict(values), total))

    def _supersede(self, run=None):
        """Make ``run`` the current one (or none) and stop the previous run; return the previous."""
        with self._lock:
            previous, self._current = self._current, run
        if previous is not None:
            previous.stop.set()
        return previous

    def _is_current(self, run):
        return self._current is run

    def _train_in_background(self, run, previous):
        # One training at a time: the replaced run stops at its next report; wait for it here,
        # in this worker thread, so the kernel's main thread never blocks.
        if previous is not None and previous.thread is not None:
            previous.thread.join()
        if run.stop.is_set():
            return
        self._execute(run)

    def _execute(self, run):
        def report(iteration, **scalars):
            run.curve.append(iteration, scalars)
            if run.stop.is_set():
                run.stopped = True
                return True
            now = time.perf_counter()
            if now - run.last_refresh >= self.refresh_s and self._is_current(run):
                run.last_refresh = now
                self._show_progress(run)
            return False

        try:
            result = self.train(report, **run.values)
        except Exception as exc:  # shown in the widget: a slider must never print a traceback
            run.stopped = True
            self.last_error = exc
            if self._publish(run, status=f"failed: {describe(run.values, self.sliders)}"):
                self.message.value = error_html(exc)
                self._set_running(False)
            return None
        if not run.stopped:
            self.cache[cache_key(run.values)] = result
        self._show_finished(run, result)
        return result

    # -- display ------------------------------------------------------------------------------

    def _set_sliders(self, values):
        unknown = sorted(set(values) - set(self.sliders))
        if unknown:
            raise ValueError(f"no slider named {unknown}; the sliders are {sorted(self.sliders)}")
        self._silent = True
        try:
            for key, value in values.items():
                self.sliders[key].value = value
        finally:
            self._silent = False

    def _on_change(self, _change):
        if self._silent:
            return
        if cache_key(self.values) in self.cache or not self.run_on_change:
            self._supersede()
            self._show_selection()
        else:
            self.run()

    def _show_selection(self):
        """Show the cached result for the current values, or the placeholder."""
        if cache_key(self.values) in self.cache:
            self._show_cached(self.values)
        else:
            self._set_running(False)
            self.progress.value = 0.0
            self.status.value = f"not trained yet for {html.escape(describe(self.values, self.sliders))}"
            png = self._render(draw_placeholder)
            if png is not None:
                self.image.value = png

    def _show_cached(self, values):
        result = self.cache[cache_key(values)]
        self._set_running(False)
        self.progress.value = 1.0
        self.status.value = f"cached: {html.escape(describe(values, self.sliders))}"
        return self._draw_result(result)

    def _draw_result(self, result):
        png = self._render(lambda fig: self.draw(result, fig))
        if png is not None:
            self.result = result
            self.image.value = png
            self.message.value = ""
        return result

    def _show_started(self, run):
        self._set_running(True)
        self.message.value = ""
        self.progress.value = 0.0
        self.status.value = f"training {html.escape(describe(run.values, self.sliders))} ..."
        run.last_refresh = time.perf_counter()
        png = self._render(lambda fig: self.draw_live(run.curve, fig))
        if png is not None:
            self.image.value = png

    def _render(self, fill):
        """PNG of ``fill(fig)``, or ``None`` when drawing raised (then the message says why)."""
        try:
            return render_png(fill, self.figsize, self.dpi)
        except Exception as exc:  # shown in the widget: a slider must never print a traceback
            self.last_error = exc
            self.message.value = error_html(exc)
            return None

    def _publish(self, run, png=None, status=None, progress=None):
        """Show these updates only if ``run`` is still the current one (checked under the lock, so
        a newer selection that arrives meanwhile always draws last). Returns whether it showed."""
        with self._lock:
            if not self._is_current(run):
                return False
            if progress is not None:
                self.progress.value = progress
            if status is not None:
                self.status.value = html.escape(status)
            if png is not None:
                self.image.value = png
            return True

    def _show_progress(self, run):
        curve = run.curve
        done = curve.iterations[-1] + 1 if curve.iterations else 0
        latest = ", ".join(f"{k} {v[-1]:.3g}" for k, v in curve.scalars.items())
        status = (f"training {describe(run.values, self.sliders)}: iteration {done}"
                  + (f"/{curve.total}" if curve.total else "") + (f", {latest}" if latest else ""))
        png = self._render(lambda fig: self.draw_live(curve, fig))
        self._publish(run, png, status, min(1.0, done / curve.total) if curve.total else None)

    def _show_finished(self, run, result):
        if not self._is_current(run):  # superseded: do not even render
            return
        done = run.curve.iterations[-1] + 1 if run.curve.iterations else 0
        what = describe(run.values, self.sliders)
        if run.stopped:
            status = f"stopped at iteration {done}: {what} (not cached; press Run to train again)"
        else:
            status = f"done: {what} ({done} iterations, cached)"
        png = self._render(lambda fig: self.draw(result, fig))
        if self._publish(run, png, status, None if run.stopped else 1.0):
            self._set_running(False)
            if png is not None:
                self.result = result
                self.message.value = ""

    def _set_running(self, running):
        self.stop_button.disabled = not running


# ----------------------------------------------------------------------------------------------
# Lesson builders (thin: the computations live in the other modules, imported inside each builder)
# ----------------------------------------------------------------------------------------------

def _linked(sliders, parts, name):
    """One box showing ``sliders`` once above several explorers that share them."""
    box = widgets.VBox([_sliders_box(sliders), *parts])
    box.add_class("dipcourse-widget")
    box.add_class(f"dipcourse-{name}")
    box.sliders = sliders
    return box


def _tracker_reporter(report):
    """Adapt :func:`dipcourse.dip.fit_dip`'s ``callback(iteration, x, tracker)`` to ``report``."""
    def callback(iteration, _x, tracker):
        latest = {key: tracker.rows[key][-1] for key in ("psnr", "psnr_smoothed", "loss")
                  if key in tracker.rows}
        return report(iteration, **latest)
    return callback


def _fresh_network(net, seed, net_kwargs, channels):
    """A network to train: a copy of ``net`` (runs train in place; every run must start from the
    same θ₀), or a new :class:`~dipcourse.dip.SkipNet` seeded by ``seed``, or ``None``."""
    import copy

    from dipcourse.config import seed_everything
    from dipcourse.dip import SkipNet

    if net is not None:
        return copy.deepcopy(net)
    if net_kwargs is None:
        return None
    seed_everything(seed)
    return SkipNet(**{"out_channels": channels, **net_kwargs})


def draw_dip_run(run, fig):
    """Measurement, PSNR curve with its peak, best (oracle-stop) and final image of a DIP run."""
    result = run["result"]
    show_image(fig.add_subplot(1, 4, 1), run["measured"], f"noisy, {describe(run['values'])}")
    ax = fig.add_subplot(1, 4, (2, 3))
    history = result.history
    ax.plot(history["iteration"], history["psnr"], label="x_t")
    ax.plot(history["iteration"], history["psnr_smoothed"], label="smoothed r_t")
    ax.plot([result.peak_iteration], [result.peak_psnr], "v", color="k", label="peak")
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    show_image(fig.add_subplot(1, 4, 4), result.x,
               f"final {result.final_psnr:.1f} dB\n(peak {result.peak_psnr:.1f} dB at {result.peak_iteration})")


# -- lesson 01 ---------------------------------------------------------------------------------

def cs_inpainting(image, lam, sigma, keep, iters=40, rho=1.0, seed=0):
    """Lesson 01's slider computation: inpaint ``image`` from a fraction ``keep`` of its entries
    with noise σ by PnP-ADMM (Algorithm 3) with the TV prox of weight ``lam``.

    Returns a dict: ``measured`` (the zero-filled image Aᵀb), ``psnr_measured``, ``result``
    (the :class:`dipcourse.Result` of :func:`dipcourse.solvers.pnp_admm`) and ``values``.
    """
    from dipcourse.metrics import psnr
    from dipcourse.operators import RandomMask, measure
    from dipcourse.priors import make_prox
    from dipcourse.solvers import pnp_admm

    A = RandomMask(tuple(image.shape), keep=keep, seed=seed)
    b = measure(A, image, sigma, seed=seed)
    result = pnp_admm(A, b, make_prox("tv", lam=lam), rho=rho, iters=iters, ref=image)
    measured = A.adjoint(b)
    return dict(measured=measured, psnr_measured=psnr(image, measured), result=result,
                values=dict(lam=lam, sigma=sigma, keep=keep))


def draw_cs(run, fig):
    """Zero-filled measurement, PnP-ADMM TV reconstruction (PSNR in the titles), PSNR curve."""
    result, values = run["result"], run["values"]
    show_image(fig.add_subplot(1, 3, 1), run["measured"],
               f"measured (keep {values['keep']:.2f}, σ {values['sigma']:.3f})\n{run['psnr_measured']:.1f} dB")
    show_image(fig.add_subplot(1, 3, 2), result.x,
               f"PnP-ADMM TV, λ = {values['lam']:.3g}\n{result.final_psnr:.1f} dB")
    ax = fig.add_subplot(1, 3, 3)
    ax.plot(result.history["iteration"], result.history["psnr"])
    ax.set_xlabel("ADMM iteration")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)


def cs_explorer(image, *, lam=0.01, sigma=10 / 255, keep=0.5, iters=40, rho=1.0, seed=0):
    """Lesson 01: sliders λ (TV weight), σ and sampling ratio → PnP-ADMM TV inpainting, redrawn at once.

    Computes :func:`cs_inpainting` (``iters`` ADMM iterations; 40 take well under a second at the
    quick profile's size) and draws it with :func:`draw_cs`. Defaults: the thesis's λ = 0.01,
    σ = 10/255, half the entries kept, ρ = 1. Slider CSS classes: ``dipcourse-slider-lam``,
    ``dipcourse-slider-sigma``, ``dipcourse-slider-keep``; plot: ``dipcourse-plot-cs``.
    """
    sliders = {
        "lam": make_slider("lam", lam, 1e-4, 1.0, log=True, description="λ (TV weight)"),
        "sigma": make_slider("sigma", sigma, 0.0, 0.2, 0.005, description="σ (noise)"),
        "keep": make_slider("keep", keep, 0.05, 1.0, 0.05, description="sampling ratio (keep)"),
    }

    def compute(lam, sigma, keep):
        return cs_inpainting(image, lam, sigma, keep, iters=iters, rho=rho, seed=seed)

    return InstantExplorer(compute, draw_cs, sliders, name="cs", figsize=(9.0, 3.2))


# -- lesson 02 ---------------------------------------------------------------------------------

def dip_denoising(report, image, sigma, iters, lr=0.01, seed=0, net=None, net_kwargs=None, **fit_kwargs):
    """Lesson 02's training: DIP (:func:`dipcourse.dip.fit_dip`) denoising ``image`` + noise σ,
    calling ``report(iteration, psnr=..., psnr_smoothed=..., loss=...)`` each iteration (stops when
    it returns ``True``). Returns a dict: ``result``, ``measured`` (the noisy image), ``values``."""
    from dipcourse.dip import fit_dip
    from dipcourse.operators import Identity, measure

    A = Identity(tuple(image.shape))
    b = measure(A, image, sigma, seed=seed)
    result = fit_dip(A, b, iters, net=_fresh_network(net, seed, net_kwargs, image.shape[0]), lr=lr,
                     ref=image, seed=seed, callback=_tracker_reporter(report), progress=False, **fit_kwargs)
    return dict(result=result, measured=b, values=dict(sigma=sigma))


def sigma_explorer(image, *, sigma=25 / 255, sigma_max=0.2, iters=None, lr=0.01, seed=0, net=None,
                   net_kwargs=None, initial=None, refresh_s=0.5, **fit_kwargs):
    """Lesson 02: a σ slider → DIP denoising trained live (progress, curve, Stop, cache per σ).

    Each run is :func:`dip_denoising` for ``iters`` iterations (default: the profile's), drawn by
    :func:`draw_dip_run`. The network is a copy of ``net``, or ``SkipNet(**net_kwargs)`` seeded by
    ``seed``, or (both ``None``) fit_dip's thesis network; every σ starts from the same weights.
    ``initial``: a run for the starting σ (the dict :func:`dip_denoising` returns) to show without
    training. Extra keywords go to :func:`dipcourse.dip.fit_dip`. Slider: ``dipcourse-slider-sigma``;
    plot: ``dipcourse-plot-dip-sigma``.
    """
    from dipcourse.config import get_profile

    iters = get_profile().iters if iters is None else iters
    sliders = {"sigma": make_slider("sigma", sigma, 0.0, sigma_max, 0.005, description="σ (noise)")}

    def train(report, sigma):
        return dip_denoising(report, image, sigma, iters, lr=lr, seed=seed, net=net, net_kwargs=net_kwargs,
                             **fit_kwargs)

    return LiveTrainer(train, sliders, draw=draw_dip_run, total=iters, initial=initial, refresh_s=refresh_s,
                       name="dip-sigma", figsize=(10.0, 2.8))


# -- lesson 03 ---------------------------------------------------------------------------------

def pnp_at_rho(A, b, ref, rho, prox, iters=50):
    """Lesson 03's instant part: PnP-ADMM (Algorithm 3) with penalty ρ. Returns a dict
    ``result``, ``values``."""
    from dipcourse.solvers import pnp_admm

    return dict(result=pnp_admm(A, b, prox, rho=rho, iters=iters, ref=ref), values=dict(rho=rho))


def dip_admm_v2_at_rho(report, A, b, ref, rho, prox, iters, lr=1e-3, seed=0, net=None, net_kwargs=None):
    """Lesson 03's trained part: DIP-ADMM-v2 (Algorithm 2) with penalty ρ, reporting the PSNR of
    G(θ_t) each iteration. Returns a dict ``result``, ``values``."""
    from dipcourse.admm import dip_admm_v2
    from dipcourse.metrics import psnr

    def callback(t, state):
        return report(t - 1, psnr=psnr(ref, state["g"]))

    result = dip_admm_v2(A, b, prox, iters, rho=rho, lr=lr, ref=ref, seed=seed,
                         net=_fresh_network(net, seed, net_kwargs, A.in_shape[0]), callback=callback,
                         progress=False)
    return dict(result=result, values=dict(rho=rho))


def draw_rho_run(title):
    """A ``draw(run, fig)`` showing the PSNR curve of a run at one ρ and its final image."""
    def draw(run, fig):
        result = run["result"]
        ax = fig.add_subplot(1, 2, 1)
        ax.plot(result.history["iteration"], result.history["psnr"])
        ax.set_xlabel("iteration")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{title}, ρ = {run['values']['rho']:.3g}", fontsize=10)
        ax.grid(alpha=0.3)
        show_image(fig.add_subplot(1, 2, 2), result.x, f"final {result.final_psnr:.1f} dB")
    return draw


def rho_explorer(A, b, ref, *, rho=1.0, rho_range=(0.01, 100.0), prior="tv", lam=0.01, pnp_iters=50,
                 dip_iters=None, lr=1e-3, seed=0, net=None, net_kwargs=None, initial=None, refresh_s=0.5):
    """Lesson 03: one ρ slider → PnP-ADMM redrawn at once AND DIP-ADMM-v2 trained live, cached per ρ.

    Both use the prior ``make_prox(prior, lam=lam)`` (thesis: TV, λ = 0.01, ρ = 1, lr 0.001), or
    ``prior`` itself when it is a ``prox(v, rho)`` callable (e.g. ``make_prox("nlm")``).
    ``dip_iters`` defaults to the profile's iterations; ``initial`` is a DIP-ADMM-v2 run for the
    starting ρ (the dict :func:`dip_admm_v2_at_rho` returns). Returns a box with ``.instant``
    (:class:`InstantExplorer`), ``.trainer`` (:class:`LiveTrainer`) and ``.sliders``. Slider:
    ``dipcourse-slider-rho``; plots: ``dipcourse-plot-pnp-rho`` and ``dipcourse-plot-dip-admm-rho``.
    """
    from dipcourse.config import get_profile
    from dipcourse.priors import make_prox

    prox = prior if callable(prior) else make_prox(prior, lam=lam)
    dip_iters = get_profile().iters if dip_iters is None else dip_iters
    sliders = {"rho": make_slider("rho", rho, rho_range[0], rho_range[1], log=True, description="ρ (penalty)")}

    def compute(rho):
        return pnp_at_rho(A, b, ref, rho, prox, iters=pnp_iters)

    def train(report, rho):
        return dip_admm_v2_at_rho(report, A, b, ref, rho, prox, dip_iters, lr=lr, seed=seed, net=net,
                                  net_kwargs=net_kwargs)

    instant = InstantExplorer(compute, draw_rho_run("PnP-ADMM"), sliders, name="pnp-rho",
                              figsize=(7.0, 2.8), show_sliders=False)
    trainer = LiveTrainer(train, sliders, draw=draw_rho_run("DIP-ADMM-v2"), total=dip_iters, initial=initial,
                          refresh_s=refresh_s, name="dip-admm-rho", figsize=(7.0, 2.8), show_sliders=False)
    box = _linked(sliders, [instant, trainer], "rho")
    box.instant, box.trainer = instant, trainer
    return box


# -- lesson 06 ---------------------------------------------------------------------------------

def subspace_fit(report, U, ref, p, sigma, iters, lr=1e-3, seed=0, net=None, z=None, **fit_kwargs):
    """Lesson 06's training: fit DIP only along the top-``p`` columns of ``U`` (eq. 44,
    :func:`dipcourse.jacobian.fit_along_directions`) to ``ref`` + noise σ. Returns a dict
    ``result``, ``measured``, ``values``."""
    from dipcourse.jacobian import fit_along_directions
    from dipcourse.operators import Identity, measure

    b = measure(Identity(tuple(ref.shape)), ref, sigma, seed=seed)
    result = fit_along_directions(b, U, iters, net=_fresh_network(net, seed, None, ref.shape[0]), z=z, lr=lr,
                                  ref=ref, seed=seed, p=p, callback=_tracker_reporter(report), progress=False,
                                  **fit_kwargs)
    return dict(result=result, measured=b, values=dict(p=p, sigma=sigma))


def subspace_explorer(U, ref, *, net=None, z=None, p=None, p_max=None, sigma=25 / 255, sigma_max=0.2,
                      iters=None, lr=1e-3, seed=0, initial=None, refresh_s=0.5, **fit_kwargs):
    """Lesson 06: sliders p (directions) and σ → DIP fitted along the top-p eigen-directions, live.

    ``U`` (n × k) holds the eigenvectors of J Jᵀ at ``net``/``z`` (pass the same network and input:
    each run trains a copy, so all start from that θ₀). The noisy image is ``ref`` + σ noise (seeded).
    ``p`` defaults to k // 2; the p slider runs from 1 to ``p_max`` (default k); a p above k shows
    the module's message in the widget. ``iters`` defaults to the profile's. Sliders:
    ``dipcourse-slider-p``, ``dipcourse-slider-sigma``; plot: ``dipcourse-plot-subspace``.
    """
    from dipcourse.config import get_profile

    k = np.asarray(U).shape[1]
    p = max(1, k // 2) if p is None else p
    iters = get_profile().iters if iters is None else iters
    sliders = {"p": make_slider("p", p, 1, k if p_max is None else p_max, integer=True,
                                description="p (directions)"),
               "sigma": make_slider("sigma", sigma, 0.0, sigma_max, 0.005, description="σ (noise)")}

    def train(report, p, sigma):
        return subspace_fit(report, U, ref, p, sigma, iters, lr=lr, seed=seed, net=net, z=z, **fit_kwargs)

    return LiveTrainer(train, sliders, draw=draw_dip_run, total=iters, initial=initial, refresh_s=refresh_s,
                       name="subspace", figsize=(10.0, 2.8))
