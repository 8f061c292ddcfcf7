"""How a lesson states what it shows: each claim is a measured value, a bound, a direction — and its margin.

A lesson's Checks are its promise to the student: "what the text says is true, and here is the proof".
A bare ``assert fall >= 2.0`` says neither how much room there was nor what it rested on, and a claim that
passes by 0.05 dB on one machine may fail on the next (another CPU or thread count takes another
floating-point path, and DIP trajectories part by tenths of a dB). So a claim is stated as data::

    claims = Claims("02_dip_overfitting")
    claims.at_least("DIP falls after its peak", falls, bound=2.0, unit="dB", statistic="mean")
    claims.at_most("ES-WMV stops near the oracle", gaps, bound=1.0, unit="dB", statistic="median")
    claims.verify()

``falls`` holds one value per seed or image; the claim's value is their mean (or median, min, max) and the
table shows their spread next to the **margin**, how far the value lies inside the bound. ``verify()``
shows the table (the last output of every lesson) and raises :class:`ClaimsFailed` if any claim fails.
Its output also carries the claims as JSON (:data:`MIMETYPE`), which the course runner collects into
``build/<profile>/claims.json`` and ``claims.md``.
"""
import json
import math
import platform
from dataclasses import asdict, dataclass, field

import numpy as np

MIMETYPE = "application/vnd.dipcourse.claims+json"
STATISTICS = ("mean", "median", "min", "max", "value")
DIRECTIONS = {"at least": ">=", "at most": "<=", "above": ">", "below": "<"}


class ClaimsFailed(AssertionError):
    """One or more of a lesson's claims do not hold; the message lists them with their values and bounds."""


@dataclass
class Claim:
    """One claim: ``value`` (computed from ``samples`` by ``statistic``) compared with ``bound``.

    ``direction`` is one of ``"at least"``, ``"at most"``, ``"above"`` (strict), ``"below"`` (strict).
    ``margin`` is how far the value lies on the right side of the bound (negative: the claim fails).
    """

    name: str
    value: float
    bound: float
    direction: str
    unit: str = ""
    statistic: str = "value"
    samples: list = field(default_factory=list)
    note: str = ""

    @property
    def margin(self):
        sign = 1.0 if self.direction in ("at least", "above") else -1.0
        return sign * (self.value - self.bound)

    @property
    def holds(self):
        if not math.isfinite(self.value):
            return False
        return self.margin > 0 if self.direction in ("above", "below") else self.margin >= 0

    @property
    def spread(self):
        """(min, max) of the samples, or ``None`` for a single value."""
        return (min(self.samples), max(self.samples)) if len(self.samples) > 1 else None

    def as_dict(self):
        """The claim as strict JSON data: a non-finite number (a broken method's ratio) is the string
        ``"inf"``, ``"-inf"`` or ``"nan"`` (``float()`` reads it back), as a Jupyter kernel would send it."""
        data = asdict(self)
        data.update(margin=self.margin, holds=self.holds)
        for key in ("value", "bound", "margin"):
            data[key] = _json_number(data[key])
        data["samples"] = [_json_number(v) for v in data["samples"]]
        return data


def _json_number(x):
    return x if math.isfinite(x) else str(x)


def ratio(numerator, denominator):
    """``numerator / denominator`` as a float, for a claim's samples: ±inf when the denominator is 0 (NaN
    for 0/0). A broken method can make a denominator vanish (a prox that returns its input moves nothing,
    a running average that never moves does not jump); the claim then fails in the table, with its value,
    instead of the Checks cell stopping with ``ZeroDivisionError``."""
    numerator, denominator = float(numerator), float(denominator)
    if denominator == 0.0:
        return math.nan if numerator == 0.0 or math.isnan(numerator) else math.copysign(math.inf, numerator)
    return numerator / denominator


def _value(samples, statistic):
    values = np.asarray(samples, dtype=float).reshape(-1)
    if values.size == 0:
        raise ValueError("a claim needs at least one measured value")
    if statistic == "value":
        if values.size != 1:
            raise ValueError(f"{values.size} samples need a statistic: one of {', '.join(STATISTICS[:-1])}")
        return float(values[0])
    return float({"mean": np.mean, "median": np.median, "min": np.min, "max": np.max}[statistic](values))


def _number(x, unit):
    text = f"{x:+.3g}" if abs(x) < 1e4 else f"{x:+.3e}"
    return f"{text} {unit}".strip()


class Claims:
    """The claims of one lesson (see the module docstring)."""

    def __init__(self, lesson, profile=None):
        from dipcourse import checks
        from dipcourse.config import PROFILE_NAMES, get_profile

        self.lesson = lesson
        if profile is not None:
            checks.choice(profile, "profile", "Claims", PROFILE_NAMES)
        self.profile = profile or get_profile().name
        self.items = []

    def add(self, name, samples, bound, direction, unit="", statistic=None, note=""):
        """State a claim; ``samples`` is one number or one per seed/image (then give ``statistic``)."""
        from dipcourse import checks

        where = f"claim {name!r}"
        checks.choice(direction, "direction", where, DIRECTIONS)
        # a bound of ±inf or NaN would make a claim that can never fail (or never hold)
        bound = checks.number(bound, "bound", where, hint="the bound is set from the measured spread")
        try:
            values = [float(v) for v in np.asarray(samples, dtype=float).reshape(-1)]
        except (TypeError, ValueError):
            raise TypeError(f"{where}: samples must be a number or a list of numbers, got {samples!r}") from None
        if not values:
            raise ValueError(f"{where}: samples is empty; a claim needs at least one measured value")
        statistic = statistic or ("value" if len(values) == 1 else None)
        if statistic not in STATISTICS:
            raise ValueError(f"claim {name!r}: {len(values)} samples need statistic= one of "
                             f"{', '.join(STATISTICS[:-1])}")
        claim = Claim(name, _value(values, statistic), bound, direction, unit, statistic,
                      values if len(values) > 1 else [], note)
        self.items.append(claim)
        return claim

    def at_least(self, name, samples, bound, **kwargs):
        return self.add(name, samples, bound, "at least", **kwargs)

    def at_most(self, name, samples, bound, **kwargs):
        return self.add(name, samples, bound, "at most", **kwargs)

    def above(self, name, samples, bound, **kwargs):
        return self.add(name, samples, bound, "above", **kwargs)

    def below(self, name, samples, bound, **kwargs):
        return self.add(name, samples, bound, "below", **kwargs)

    @property
    def failed(self):
        return [c for c in self.items if not c.holds]

    def as_dict(self):
        import torch

        return {"lesson": self.lesson, "profile": self.profile, "threads": torch.get_num_threads(),
                "machine": platform.processor() or platform.machine(),
                "claims": [c.as_dict() for c in self.items]}

    def markdown(self):
        """The claims table: claim, value (statistic over n), bound, margin, spread, verdict."""
        rows = ["| claim | value | bound | margin | samples (min … max) | holds |", "|---|---:|---:|---:|---|---|"]
        for c in self.items:
            what = f"{_number(c.value, c.unit)}" + (f" ({c.statistic} of {len(c.samples)})" if c.samples else "")
            spread = f"{c.spread[0]:.3g} … {c.spread[1]:.3g}" if c.spread else ""
            rows.append(f"| {c.name} | {what} | {DIRECTIONS[c.direction]} {c.bound:g} | "
                        f"{_number(c.margin, c.unit)} | {spread} | {'yes' if c.holds else '**NO**'} |")
        return "\n".join(rows)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/markdown": self.markdown(), "text/plain": self.markdown(),
                MIMETYPE: json.loads(json.dumps(self.as_dict()))}

    def verify(self):
        """Show the table; raise :class:`ClaimsFailed` (an ``AssertionError``) if any claim fails."""
        from IPython.display import display

        if not self.items:
            raise ClaimsFailed(f"{self.lesson}: no claims were stated")
        display(self)
        failed = self.failed
        if failed:
            lines = [f"{c.name}: {c.value:.4g} {c.unit} is not {c.direction} {c.bound:g}".replace("  ", " ")
                     for c in failed]
            raise ClaimsFailed(f"{self.lesson}: {len(failed)} of {len(self.items)} claims fail — " + "; ".join(lines))
        return self


def collect(notebook):
    """The claims a notebook's executed outputs carry (the JSON of every ``Claims.verify()`` display)."""
    found = []
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if MIMETYPE in data:
                found.append(data[MIMETYPE])
    return found
