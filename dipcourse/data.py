"""Test images for the lessons, taken only from the files that ship inside scikit-image.

The thesis uses 128×128×3 CelebA faces (§3.3). A course must run without network access, so we use
the photographs bundled with scikit-image instead: every name in :func:`available_images` loads from
the installed package (none of them goes through scikit-image's downloader, which a test checks
with the network blocked).

Images are returned as torch tensors of shape (C, H, W), float32, values in [0, 1], after a centre
crop to a square and an anti-aliased resize to ``size × size``.

Colour and gray:
    * ``gray=True`` always gives C = 1 (colour photos are converted with the ITU-R 601 luma weights
      of :func:`skimage.color.rgb2gray`).
    * ``gray=False`` always gives C = 3. A photograph that is gray to begin with (``camera``,
      ``moon``, ...) is replicated into three equal channels, so that every image of a lesson has
      the same shape and can be batched; it stays a gray-looking picture.
"""
from functools import lru_cache

import numpy as np
import skimage.color
import skimage.data
import skimage.transform
import torch

from dipcourse import checks

#: Colour photographs bundled with scikit-image (name -> skimage.data function name).
COLOR_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry",
                "hubble_deep_field", "retina")
#: Gray photographs and one phantom bundled with scikit-image.
GRAY_IMAGES = ("camera", "brick", "grass", "gravel", "moon", "coins", "clock", "cell",
               "shepp_logan_phantom")

#: Smallest side :func:`load_image` produces (smaller images are useless for the lessons).
MIN_SIZE = 4


def available_images():
    """Names accepted by :func:`load_image`: colour photographs first, then gray ones."""
    return list(COLOR_IMAGES + GRAY_IMAGES)


@lru_cache(maxsize=None)
def _raw(name):
    """The bundled image ``name`` as float64 (H, W) or (H, W, 3) in [0, 1], read once per session."""
    image = getattr(skimage.data, name)()
    if image.dtype == np.uint8:
        image = image.astype(np.float64) / 255.0
    else:
        image = np.clip(image.astype(np.float64), 0.0, 1.0)
    image.setflags(write=False)
    return image


def _centre_square(image):
    """Crop the largest centred square out of an (H, W[, C]) array."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top:top + side, left:left + side]


def load_image(name, size=128, gray=False):
    """Load a bundled scikit-image photograph as a (C, size, size) float32 tensor in [0, 1].

    Args:
        name: one of :func:`available_images` (e.g. ``"astronaut"``, ``"camera"``).
        size: side of the square output in pixels; the thesis uses 128 (§3.3). The image is
            centre-cropped to a square and then resized with anti-aliasing (a Gaussian low-pass
            before interpolation, so small sizes do not alias). Sizes above the cropped square's
            side are refused rather than upsampled, because upsampling would invent no detail.
        gray: ``True`` for one channel; ``False`` for three (gray photographs are replicated,
            see the module docstring).

    Returns:
        torch.Tensor of shape (1 or 3, size, size), dtype float32, values in [0, 1].
    """
    names = available_images()
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"load_image: unknown image {name!r}; available images: {', '.join(names)}")
    size = checks.integer(size, "size", "load_image", hint="the side of the square image in pixels")
    gray = checks.flag(gray, "gray", "load_image")
    square = _centre_square(_raw(name))
    largest = square.shape[0]
    if not MIN_SIZE <= size <= largest:
        raise ValueError(f"load_image: size must be between {MIN_SIZE} and {largest} pixels for image "
                         f"{name!r} (its centred square is {largest}×{largest}), got {size}")
    if square.ndim == 3 and gray:
        square = skimage.color.rgb2gray(square)
    resized = skimage.transform.resize(square, (size, size), order=1, anti_aliasing=True,
                                       mode="reflect")
    resized = np.clip(resized, 0.0, 1.0)
    if resized.ndim == 2:
        resized = resized[None] if gray else np.repeat(resized[None], 3, axis=0)
    else:
        resized = resized.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(resized, dtype=np.float32))
