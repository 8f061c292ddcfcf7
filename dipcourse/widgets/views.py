"""The lessons' widgets as views: sliders, a plot, a message line — for cheap effects and for training.

Two kinds of slider appear in the course (COURSE.md, "Widgets"):

* :class:`InstantExplorer` -- the effect is cheap (a few dozen PnP-ADMM iterations). On every slider
  change it calls an ordinary function ``compute(**values)`` and draws its result with
  ``draw(result, fig)`` at once.
* :class:`LiveTrainer` -- the effect needs training (a DIP run). It is a view on a
  :class:`dipcourse.widgets.runner.TrainingRunner`, which runs ``train(callback, **values)`` in the
  background, stops it, caches it and allows one run per kernel; the view shows a progress bar, the live
  curve (at most every ``refresh_s`` seconds), the final figure, and Run/Stop buttons.

Both render their matplotlib figures (explicit :class:`~matplotlib.figure.Figure` objects on the Agg
canvas, never pyplot's global state) to PNG bytes shown in an ``ipywidgets.Image``. That works the
same in JupyterLab, classic Notebook and Colab, also when the update comes from a thread. Displayed,
a widget also offers its current picture as ``image/png``, which a static page (GitHub, the course
website, an HTML export) shows where it cannot run the widget.

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
"""
import base64
import html
import io
import math
import threading

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dipcourse import checks
from dipcourse.widgets.runner import Listener, TrainingRunner, cache_key

# Matplotlib's Agg rendering shares font caches between figures; one lock keeps a trainer's
# background thread and an explorer in the kernel's main thread from rendering at the same time.
_RENDER_LOCK = threading.Lock()

PLACEHOLDER_TEXT = "Move the slider or press Run to train."
STATIC_NOTE = "Interactive widget: run this lesson (locally, in Colab or on Binder) to move its sliders."


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
    gets the CSS class ``dipcourse-slider-<key>``. A range that is empty, a log range that is not
    positive, or a starting value outside the range is refused (``ValueError``) rather than clamped:
    ipywidgets would silently move the value to the nearest end.
    """
    label = description or key
    min, max, value = (checks.number(number, name, f"slider {label}") for name, number in
                       (("min", min), ("max", max), ("value", value)))
    if not min < max:
        raise ValueError(f"slider {label}: the range must have min < max, got ({min}, {max})")
    if log and min <= 0:
        raise ValueError(f"slider {label}: a logarithmic slider needs min > 0, got ({min}, {max})")
    if not min <= value <= max:
        raise ValueError(f"slider {label}: the starting value {value} lies outside its range [{min}, {max}]")
    common = dict(description=label, continuous_update=False,
                  style={"description_width": "12em"}, layout=widgets.Layout(width="32em"))
    if integer:
        slider = widgets.IntSlider(value=int(value), min=int(min), max=int(max), step=int(step or 1), **common)
    elif log:
        lo, hi = math.log10(min), math.log10(max)
        slider = widgets.FloatLogSlider(value=value, base=10, min=lo, max=hi, step=step or (hi - lo) / 40,
                                        readout_format=readout_format or ".3g", **common)
    else:
        slider = widgets.FloatSlider(value=value, min=min, max=max, step=step or (max - min) / 100,
                                     readout_format=readout_format or ".3g", **common)
    slider.add_class(f"dipcourse-slider-{key}")
    return slider


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


def error_widget(exc, name="widget"):
    """What a lesson builder returns when its arguments are wrong: the message, in the widget's place."""
    label = widgets.HTML(error_html(exc))
    label.add_class("dipcourse-message")
    box = widgets.VBox([label])
    box.add_class("dipcourse-widget")
    box.add_class(f"dipcourse-{name}")
    box.last_error = exc
    return box


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


def _plot_image(name, figsize, dpi):
    # Shown at the figure's own pixel width (a VBox would otherwise stretch it, blurred), shrunk to
    # fit narrow windows.
    width = f"{round(figsize[0] * dpi)}px"
    image = widgets.Image(format="png", layout=widgets.Layout(width=width, max_width="100%", height="auto"))
    image.add_class("dipcourse-plot")
    image.add_class(f"dipcourse-plot-{name}")
    return image


class _View(widgets.VBox):
    """What both widgets have: sliders, a message line, a plot, a cache, and a static picture."""

    def __init__(self, sliders, name, figsize, dpi, show_sliders, extra=()):
        self.sliders = dict(sliders)
        self.name = name
        self.figsize, self.dpi = figsize, dpi
        self.result = None
        self.last_error = None
        self.image = _plot_image(name, figsize, dpi)
        self.message = widgets.HTML("")
        self.message.add_class("dipcourse-message")
        children = ([widgets.VBox(list(self.sliders.values()))] if show_sliders else []) + list(extra) + \
            [self.message, self.image]
        super().__init__(children)
        self.add_class("dipcourse-widget")
        self.add_class(f"dipcourse-{name}")

    @property
    def values(self):
        """Current slider values, ``{key: value}``."""
        return {key: slider.value for key, slider in self.sliders.items()}

    def _render(self, fill):
        """PNG of ``fill(fig)``, or ``None`` when drawing raised (then the message says why)."""
        try:
            return render_png(fill, self.figsize, self.dpi)
        except Exception as exc:  # shown in the widget: a slider must never print a traceback
            self.show_error(exc)
            return None

    def show_error(self, exc):
        self.last_error = exc
        self.message.value = error_html(exc)

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        if self.image.value:
            bundle["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        bundle["text/plain"] = STATIC_NOTE
        return bundle


# ----------------------------------------------------------------------------------------------
# Instant redraw
# ----------------------------------------------------------------------------------------------

class InstantExplorer(_View):
    """Sliders whose effect is cheap: recompute and redraw at once on every change.

    Args:
        compute: ``compute(**values) -> result``, an ordinary (tested) function of the slider values.
        draw: ``draw(result, fig)`` draws ``result`` on a fresh matplotlib ``Figure``.
        sliders: ``{key: slider}``; ``key`` is the keyword ``compute`` receives (see :func:`make_slider`).
        name: used in the CSS classes ``dipcourse-<name>`` and ``dipcourse-plot-<name>``.
        show_sliders: ``False`` when another widget already shows these sliders (see ``rho_explorer``).

    The first result is computed when the widget is built (cheap, and finishes inside the cell).
    Results are cached by slider values. ``.result`` is the result on display, ``.cache`` maps
    :func:`cache_key` of the values to results, ``.last_error`` holds the last exception shown.
    """

    def __init__(self, compute, draw, sliders, *, name="explorer", figsize=(8.0, 3.2), dpi=96, show_sliders=True):
        super().__init__(sliders, name, figsize, dpi, show_sliders)
        self.compute = compute
        self.draw = draw
        self.cache = {}
        for slider in self.sliders.values():
            slider.observe(lambda _change: self.update(), names="value")
        self.update()

    def update(self):
        """Compute (or fetch from the cache) the result for the current values and redraw it.

        Returns the result, or ``None`` when ``compute`` raised (the message is then shown).
        """
        key = cache_key(self.values)
        try:
            if key not in self.cache:
                self.cache[key] = self.compute(**self.values)
            result = self.cache[key]
            png = render_png(lambda fig: self.draw(result, fig), self.figsize, self.dpi)
        except Exception as exc:  # shown in the widget: a slider must never print a traceback
            self.show_error(exc)
            return None
        self.result = result
        self.image.value = png
        self.message.value = ""
        return result


# ----------------------------------------------------------------------------------------------
# Live training
# ----------------------------------------------------------------------------------------------

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
    ax.set_title(f"training {describe(curve.values)}: {curve.done}" + (f"/{curve.total}" if curve.total else ""),
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


class LiveTrainer(_View, Listener):
    """Sliders whose effect needs training: background runs with progress, live curve, Stop and cache.

    Args:
        train: ``train(callback, **values) -> result``: pass ``callback`` to the course's method
            (``fit_dip(..., callback=callback)``); see :class:`dipcourse.widgets.runner.TrainingRunner`.
        sliders: ``{key: slider}`` as for :class:`InstantExplorer`.
        draw: ``draw(result, fig)`` for a finished (or stopped) run; default :func:`draw_result`.
        draw_live: ``draw_live(curve, fig)`` during a run (a ``LiveCurve``); default :func:`draw_live_curve`.
        total: iterations per run (int, or ``total(**values)``), for the progress bar and x-axis.
        initial: a finished result for the sliders' starting values (precomputed in the notebook),
            shown at once; otherwise the widget shows a placeholder and trains nothing.
        run_on_change: a slider change starts training (else only the Run button does).
        refresh_s: at most one redraw of the live curve per this many seconds.
        name: used in the CSS classes ``dipcourse-<name>`` and ``dipcourse-plot-<name>``.

    Only one run trains at a time, in this widget and across all trainers of the kernel: a new
    request stops the old one (which then says "stopped"), and a stopped or superseded run never
    draws over a newer selection. Stopped runs are shown but not cached.
    """

    def __init__(self, train, sliders, *, draw=draw_result, draw_live=draw_live_curve, total=None, initial=None,
                 run_on_change=True, refresh_s=0.5, name="trainer", figsize=(8.0, 3.2), dpi=96, show_sliders=True):
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
        controls = widgets.HBox([self.run_button, self.stop_button, self.progress])
        super().__init__(sliders, name, figsize, dpi, show_sliders, extra=[controls, self.status])
        self.draw = draw
        self.draw_live = draw_live
        self.run_on_change = run_on_change
        self.runner = TrainingRunner(train, total=total, refresh_s=refresh_s, listener=self)
        self._silent = False
        self.run_button.on_click(lambda _button: self.run())
        self.stop_button.on_click(lambda _button: self.stop())
        for slider in self.sliders.values():
            slider.observe(self._on_change, names="value")
        if initial is not None:
            self.store(self.values, initial)
        self._show_selection()

    # -- public API ---------------------------------------------------------------------------

    @property
    def cache(self):
        return self.runner.cache

    @property
    def busy(self):
        """``True`` while a background run is training."""
        return self.runner.busy

    def store(self, values, result):
        """Put a finished ``result`` for slider ``values`` in the cache (e.g. one computed earlier)."""
        self.runner.store(values, result)
        if cache_key(values) == cache_key(self.values):
            self._show_selection()

    def run(self, values=None):
        """Start training for ``values`` (default: the sliders') in a background thread.

        A cached result is shown at once instead. Returns the background thread, or ``None``.
        """
        values = dict(self.values if values is None else values)
        thread = self.runner.start(values)
        if thread is None:
            self._show_cached(values)
        return thread

    def run_now(self, values=None, *, force=False):
        """Train for ``values`` (a dict of slider updates) in the calling thread and show the result.

        The sliders move to ``values`` without starting a background run; a cached result is
        returned without training unless ``force``. For notebooks (the cell finishes when the run
        does) and tests. Returns the result, or ``None`` if training raised (the message is shown).
        """
        self._set_sliders(values or {})
        if not force and self.runner.cached(self.values) is not None:
            self.runner.supersede()
            return self._show_cached(self.values)
        return self.runner.run_now(self.values)

    def stop(self):
        """Ask the running training to stop."""
        self.runner.stop()

    def wait(self, timeout=None):
        """Block until this widget's latest background run ends; return the result on display."""
        self.runner.wait(timeout)
        return self.result

    # -- the runner's reports (from the training thread) ----------------------------------------

    def on_started(self, run):
        self.stop_button.disabled = False
        self.message.value = ""
        self.progress.value = 0.0
        self.status.value = f"training {html.escape(describe(run.values, self.sliders))} ..."
        png = self._render(lambda fig: self.draw_live(run.curve, fig))
        if png is not None:
            self.image.value = png

    def on_progress(self, run):
        curve = run.curve
        latest = ", ".join(f"{k} {v[-1]:.3g}" for k, v in curve.scalars.items())
        status = (f"training {describe(run.values, self.sliders)}: iteration {curve.done}"
                  + (f"/{curve.total}" if curve.total else "") + (f", {latest}" if latest else ""))
        png = self._render(lambda fig: self.draw_live(curve, fig))
        self._publish(run, png, status, min(1.0, curve.done / curve.total) if curve.total else None)

    def on_finished(self, run, result):
        if not self.runner.is_current(run):  # superseded: do not even render
            return
        what = describe(run.values, self.sliders)
        if run.stopped:
            status = f"stopped at iteration {run.curve.done}: {what} (not cached; press Run to train again)"
        else:
            status = f"done: {what} ({run.curve.done} iterations, cached)"
        png = self._render(lambda fig: self.draw(result, fig))
        if self._publish(run, png, status, None if run.stopped else 1.0):
            self.stop_button.disabled = True
            if png is not None:
                self.result = result
                self.message.value = ""

    def on_failed(self, run, error):
        if self._publish(run, status=f"failed: {describe(run.values, self.sliders)}"):
            self.show_error(error)
            self.stop_button.disabled = True

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
        if self.runner.cached(self.values) is not None or not self.run_on_change:
            self.runner.supersede()
            self._show_selection()
        else:
            self.run()

    def _show_selection(self):
        """Show the cached result for the current values, or the placeholder."""
        if self.runner.cached(self.values) is not None:
            self._show_cached(self.values)
            return
        self.stop_button.disabled = True
        self.progress.value = 0.0
        self.status.value = f"not trained yet for {html.escape(describe(self.values, self.sliders))}"
        png = self._render(draw_placeholder)
        if png is not None:
            self.image.value = png

    def _show_cached(self, values):
        result = self.runner.cached(values)
        self.stop_button.disabled = True
        self.progress.value = 1.0
        self.status.value = f"cached: {html.escape(describe(values, self.sliders))}"
        png = self._render(lambda fig: self.draw(result, fig))
        if png is not None:
            self.result = result
            self.image.value = png
            self.message.value = ""
        return result

    def _publish(self, run, png=None, status=None, progress=None):
        """Show these updates only if ``run`` is still the current one (checked under the runner's lock, so
        a newer selection that arrives meanwhile always draws last). Returns whether it showed."""
        with self.runner.lock:
            if not self.runner.is_current(run):
                return False
            if progress is not None:
                self.progress.value = progress
            if status is not None:
                self.status.value = html.escape(status)
            if png is not None:
                self.image.value = png
            return True
