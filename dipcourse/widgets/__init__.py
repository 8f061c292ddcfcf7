"""The lessons' sliders, in three layers:

* :mod:`dipcourse.widgets.runner` — training runs for a widget (background thread, stop, cache, one run
  per kernel, throttled progress), with no ipywidgets in it, so it is tested like any other code;
* :mod:`dipcourse.widgets.views` — the generic widgets: :class:`InstantExplorer` (cheap effects, redrawn
  at once) and :class:`LiveTrainer` (a view on a runner: progress bar, live curve, Run/Stop);
* :mod:`dipcourse.widgets.lessons` — the lessons' builders (``cs_explorer``, ``sigma_explorer``, …).

Everything a lesson uses can be imported from here, e.g. ``from dipcourse.widgets import sigma_explorer``
(the remedies' runs of lesson 07 live in :mod:`dipcourse.remedies` and are re-exported here).
"""
from dipcourse.remedies import fit_remedies, fit_remedy, remedy_call, remedy_spec, run_method
from dipcourse.widgets.lessons import (cs_explorer, cs_inpainting, dip_admm_v2_at_rho, dip_denoising, draw_cs,
                                       draw_dip_run, draw_remedies, draw_rho_run, pnp_at_rho, remedies_explorer,
                                       rho_explorer, sigma_explorer, subspace_explorer, subspace_fit)
from dipcourse.widgets.runner import LiveCurve, TrainingRunner, cache_key
from dipcourse.widgets.views import (InstantExplorer, LiveTrainer, describe, draw_live_curve, draw_placeholder,
                                     draw_result, error_html, error_widget, make_slider, render_png, show_image)

__all__ = ["InstantExplorer", "LiveCurve", "LiveTrainer", "TrainingRunner", "cache_key", "cs_explorer",
           "cs_inpainting", "describe", "dip_admm_v2_at_rho", "dip_denoising", "draw_cs", "draw_dip_run",
           "draw_live_curve", "draw_placeholder", "draw_remedies", "draw_result", "draw_rho_run", "error_html",
           "error_widget", "fit_remedies", "fit_remedy", "make_slider", "pnp_at_rho", "remedies_explorer",
           "remedy_call", "remedy_spec", "render_png", "rho_explorer", "run_method", "show_image", "sigma_explorer",
           "subspace_explorer", "subspace_fit"]
