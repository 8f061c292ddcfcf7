"""Small plotting helpers shared by the lessons (matplotlib only).

* :func:`to_display` -- a (C, H, W) tensor as an array ``imshow`` understands.
* :func:`show_images` -- a row (or grid) of images with titles.
* :func:`plot_curves` -- several curves on one labelled axis (PSNR vs iteration, loss vs time, ...).

They draw on a figure or axes you pass (so widgets can draw on their own figures) or create one
with pyplot, and return what they drew on. Append new general helpers here; keep lesson-specific
figures in the lessons.
"""
import math

import matplotlib.pyplot as plt
import numpy as np
import torch


def to_display(image):
    """(C, H, W) or (H, W) tensor/array → (H, W, 3) or (H, W) numpy array clipped to [0, 1]."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    if array.ndim != 2 and not (array.ndim == 3 and array.shape[2] == 3):
        raise ValueError(f"to_display expects an image of shape (C, H, W) with C in (1, 3) or "
                         f"(H, W), got {tuple(image.shape)}")
    return np.clip(array, 0.0, 1.0)


def show_images(images, titles=None, ncols=None, size=2.6, suptitle=None, fig=None):
    """Show images side by side (gray for one channel), without axes ticks.

    Args:
        images: list of (C, H, W) or (H, W) tensors/arrays with values in [0, 1].
        titles: one string per image (or None).
        ncols: images per row; default all in one row.
        size: side of each panel in inches.
        suptitle: title of the whole figure.
        fig: a matplotlib Figure to draw on (e.g. a widget's); default a new pyplot figure.

    Returns:
        The figure.
    """
    images = list(images)
    if not images:
        raise ValueError("show_images needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images")
    ncols = ncols or len(images)
    nrows = math.ceil(len(images) / ncols)
    if fig is None:
        fig = plt.figure(figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0.0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index < len(images):
            ax.imshow(to_display(images[index]), cmap="gray", vmin=0.0, vmax=1.0,
                      interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[index], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_curves(curves, xlabel="iteration", ylabel="", title=None, logx=False, logy=False,
                ax=None, styles=None, legend_loc="best"):
    """Plot several curves on one axis.

    Args:
        curves: dict ``label -> (x, y)`` (arrays of equal length) or ``label -> y`` (plotted
            against 1, 2, ...).
        xlabel, ylabel, title: axis labels (give units) and title.
        logx, logy: logarithmic axes.
        ax: axes to draw on; default a new pyplot figure.
        styles: optional dict ``label -> dict`` of matplotlib keyword arguments (e.g. ``{"ls": "--"}``).
        legend_loc: where the legend goes.

    Returns:
        The axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.6))
    for label, curve in curves.items():
        if isinstance(curve, tuple) and len(curve) == 2:
            x, y = curve
        else:
            y = curve
            x = np.arange(1, len(y) + 1)
        ax.plot(np.asarray(x), np.asarray(y), label=label, **(styles or {}).get(label, {}))
    return _finish_axes(ax, xlabel, ylabel, title, logx, logy, legend_loc)


def mean_std(curves):
    """Mean and standard deviation over runs of equal-length 1-D curves (a list of arrays).

    Returns ``(mean, std)`` as numpy arrays; with one run the std is zero.
    """
    curves = [np.asarray(c, dtype=float) for c in curves]
    if not curves:
        raise ValueError("mean_std needs at least one curve")
    lengths = {len(c) for c in curves}
    if len(lengths) != 1:
        raise ValueError(f"mean_std needs curves of one length, got lengths {sorted(lengths)}")
    stacked = np.stack(curves)
    return stacked.mean(axis=0), stacked.std(axis=0)


def plot_mean_std(curves, xlabel="iteration", ylabel="", title=None, logx=False, ax=None, styles=None,
                  legend_loc="best", alpha=0.2):
    """Mean curves with a shaded ± one standard deviation band (as thesis Fig 2 and 3).

    Args:
        curves: dict ``label -> (x, ys)`` where ``ys`` is a list of runs (equal-length arrays) and
            ``x`` one array of that length (e.g. iterations, or the mean CPU time).
        xlabel, ylabel, title, logx, ax, styles, legend_loc: as in :func:`plot_curves`.
        alpha: opacity of the band.

    Returns:
        The axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.6))
    for label, (x, ys) in curves.items():
        mean, std = mean_std(ys)
        line, = ax.plot(np.asarray(x), mean, label=label, **(styles or {}).get(label, {}))
        ax.fill_between(np.asarray(x), mean - std, mean + std, color=line.get_color(), alpha=alpha, lw=0)
    return _finish_axes(ax, xlabel, ylabel, title, logx, False, legend_loc)


def _finish_axes(ax, xlabel, ylabel, title, logx, logy, legend_loc):
    """Scales, labels, title, grid and legend: the finish every course plot shares."""
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc=legend_loc, fontsize=9)
    return ax
