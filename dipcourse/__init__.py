"""dipcourse: helper package for the deep image prior course.

Each module holds one idea of the thesis: ``operators`` (the forward models of eq. 1),
``priors`` (TV, L1, denoisers as proximal operators), ``solvers`` (ISTA, FISTA, PnP-ADMM),
``networks`` (the untrained networks), ``dip`` (DIP and its remedies), ``admm`` (Algorithms 1 and 2,
DeepRED), ``jacobian`` (the spectrum of J Jᵀ, §5), ``remedies`` (lesson 07's remedies side by side),
``claims`` (how a lesson states what it shows) and ``widgets`` (the sliders of the lessons). Around them: ``checks`` (input checks), ``runs`` (the loop
bookkeeping and callback protocol), ``training`` (what DIP-style runs share), ``batched`` and
``parallel`` (many runs at once), ``result``, ``config``, ``data``, ``metrics``, ``plotting``.
"""
from dipcourse.result import Result, Tracker

__version__ = "0.2.0"
__all__ = ["Result", "Tracker", "__version__"]
