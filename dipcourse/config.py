"""Profiles (how big the lessons' computations are), seeding and device choice.

``DIPCOURSE_PROFILE`` selects a profile: ``quick`` (CI, a first look), ``teaching`` (the default,
a laptop or a classroom JupyterHub CPU) or ``paper`` (the thesis's scale; a GPU is advised).
Lessons read their sizes from the profile, and use :meth:`Profile.pick` for settings of their own,
so one notebook serves all three profiles.
"""
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from dipcourse import checks

PROFILE_NAMES = ("quick", "teaching", "paper")


@dataclass(frozen=True)
class Profile:
    """Scale of a course run.

    Attributes:
        name: ``"quick"``, ``"teaching"`` or ``"paper"``.
        image_size: side in pixels of the images most lessons use.
        iters: number of training iterations of a typical DIP run.
        n_images: how many images the averaged experiments (lesson 04) use.
        description: one line for lesson 00.
    """

    name: str
    image_size: int
    iters: int
    n_images: int
    description: str

    def pick(self, **by_profile):
        """Return the value given for this profile, e.g. ``profile.pick(quick=300, teaching=2000, paper=10000)``."""
        missing = [n for n in PROFILE_NAMES if n not in by_profile]
        if missing:
            raise ValueError(f"Profile.pick needs a value for every profile; missing {missing}")
        return by_profile[self.name]


PROFILES = {
    "quick": Profile("quick", image_size=32, iters=300, n_images=2,
                     description="CI and a first look: 32-64 px, a few hundred iterations, ≤ 2 min per lesson"),
    "teaching": Profile("teaching", image_size=64, iters=2000, n_images=3,
                        description="class on a laptop CPU: 64-128 px, ≤ 5 min per lesson"),
    "paper": Profile("paper", image_size=128, iters=10000, n_images=25,
                     description="the thesis's scale: 128x128x3, thousands of iterations, 25 images (GPU advised)"),
}


def get_profile(name=None):
    """Return the :class:`Profile` named ``name``, else ``$DIPCOURSE_PROFILE``, else ``teaching``."""
    name = name or os.environ.get("DIPCOURSE_PROFILE") or "teaching"
    name = name.strip().lower()
    if name not in PROFILES:
        raise ValueError(f"get_profile: unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)} "
                         "(set DIPCOURSE_PROFILE or pass name=...)")
    return PROFILES[name]


def seed_everything(seed):
    """Seed Python, NumPy and torch (CPU and CUDA) so a run repeats exactly on the same device."""
    seed = checks.seed(seed, "seed_everything")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


def default_device():
    """``cuda`` when a CUDA GPU is available (Colab, a lab machine), else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def shown(value):
    """A setting as the table shows it: a float that is a whole number of grey levels but has no short
    decimal form as k/255 (the thesis's notation for noise levels: 25/255, not 0.0980392…), other floats
    in their shortest form, a dict as ``key = value`` pairs, lists and tuples element by element."""
    if isinstance(value, float):
        text = repr(value)
        if len(text) > 6 and abs(value * 255 - round(value * 255)) < 1e-9:
            return f"{round(value * 255)}/255"
        return text if len(text) <= 8 else f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{key} = {shown(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        inner = ", ".join(shown(item) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return str(value)


class Settings:
    """A lesson's settings table: for each setting the thesis's value, the lesson's value in every profile,
    and why they differ — the table is made from the very values the lesson uses, so it cannot drift::

        settings = Settings()
        size = settings.add("image side (px)", thesis="128 (§3.3)", quick=32, teaching=64, paper=128,
                            why="a CPU lesson's budget; DIP's behaviour is the same at 64 px")
        settings          # shows the table; the current profile's column is marked

    :meth:`add` returns the value for the current profile (``value=`` gives one value for all profiles).
    """

    def __init__(self, profile=None):
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        self.rows = []

    def add(self, name, thesis, why="", value=None, **by_profile):
        unknown = sorted(set(by_profile) - set(PROFILE_NAMES))
        if unknown:
            raise TypeError(f"setting {name!r}: unknown profile(s) {unknown}; the profiles are {list(PROFILE_NAMES)}")
        if value is not None:
            if by_profile:
                raise ValueError(f"setting {name!r}: give value= or one value per profile, not both")
            by_profile = {p: value for p in PROFILE_NAMES}
        self.rows.append((name, thesis, {p: by_profile.get(p) for p in PROFILE_NAMES}, why))
        return self.profile.pick(**by_profile)

    def markdown(self):
        heads = [f"**{p}** (this run)" if p == self.profile.name else p for p in PROFILE_NAMES]
        lines = ["| setting | thesis | " + " | ".join(heads) + " | why the lesson differs |",
                 "|---|---|" + "---|" * len(PROFILE_NAMES) + "---|"]
        for name, thesis, values, why in self.rows:
            cells = [f"**{shown(values[p])}**" if p == self.profile.name else shown(values[p]) for p in PROFILE_NAMES]
            lines.append(f"| {name} | {thesis} | " + " | ".join(cells) + f" | {why} |")
        return "\n".join(lines)

    def _repr_markdown_(self):
        return self.markdown()

    def __repr__(self):
        return self.markdown()
