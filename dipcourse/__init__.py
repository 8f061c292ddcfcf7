"""dipcourse: helper package for the deep image prior course.

Each module holds one idea of the thesis: ``operators`` (the forward models of eq. 1),
``priors`` (TV, L1, denoisers as proximal operators), ``solvers`` (ISTA, FISTA, PnP-ADMM),
``dip`` (the untrained network and its training), ``admm`` (Algorithms 1 and 2),
``jacobian`` (the spectrum of J Jᵀ, §5) and ``widgets`` (the sliders of the lessons).
"""
from dipcourse.result import Result, Tracker

__version__ = "0.1.0"
__all__ = ["Result", "Tracker", "__version__"]
