"""Optional pieces: present and working here, or skipped with a message (a failure under CI=true)."""
import subprocess

import numpy as np

from backends import OPTIONAL, chromium_path, require_optional


def test_every_optional_piece_has_install_advice():
    assert set(OPTIONAL) == {"prox_tv", "bm3d", "playwright", "chromium"}
    assert all("install" in advice for advice in OPTIONAL.values())


def test_prox_tv_runs():
    require_optional("prox_tv")
    import prox_tv

    x = np.random.default_rng(0).random((8, 8))
    y = prox_tv.tv1_2d(x, 0.1)
    assert y.shape == x.shape and np.abs(y - x).max() <= 0.1 * 4 + 1e-9


def test_bm3d_runs():
    require_optional("bm3d")
    import bm3d

    noisy = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    assert bm3d.bm3d(noisy, sigma_psd=0.1).shape == (16, 16)


def test_chromium_starts():
    require_optional("chromium")
    version = subprocess.run([chromium_path(), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "Chrom" in version.stdout
