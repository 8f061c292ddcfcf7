"""dipcourse.plotting.mean_std / plot_mean_std (the shaded curves of lesson 04, thesis Fig 2 and 3)."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dipcourse.plotting import mean_std, plot_mean_std  # noqa: E402


def test_mean_std_matches_the_formula():
    runs = [np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 7.0])]
    mean, std = mean_std(runs)
    np.testing.assert_allclose(mean, [2.0, 2.0, 5.0])
    np.testing.assert_allclose(std, [1.0, 0.0, 2.0])          # population std (ddof = 0)


def test_mean_std_refuses_ragged_or_empty_input():
    with pytest.raises(ValueError, match="one length"):
        mean_std([np.zeros(3), np.zeros(4)])
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])


def test_plot_mean_std_draws_line_and_band():
    x = np.arange(3)
    ax = plot_mean_std({"a": (x, [np.ones(3), 3 * np.ones(3)])}, ylabel="PSNR (dB)")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), 2.0)
    assert len(ax.collections) == 1                             # the ±std band
    assert ax.get_legend().get_texts()[0].get_text() == "a"
