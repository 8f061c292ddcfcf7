"""The settings table shows each value as the thesis writes it."""
import pytest

from dipcourse.config import Settings, shown


@pytest.mark.parametrize("value, text", [
    (25 / 255, "25/255"), ([25 / 255, 100 / 255], "[25/255, 100/255]"),   # noise levels in grey levels
    (0.01, "0.01"), (0.2, "0.2"), (1.0, "1.0"), (0.0, "0.0"),             # short decimals stay decimals
    (0.123456789, "0.1235"),
    ({"size": 16, "nd": [8, 16, 32]}, "size = 16, nd = [8, 16, 32]"), ((800, 1200), "(800, 1200)"),
    ("thesis's", "thesis's"), (3, "3"),
])
def test_shown_writes_values_as_the_thesis_does(value, text):
    assert shown(value) == text


def test_the_table_marks_this_profiles_column_and_uses_shown():
    settings = Settings("teaching")
    sigma = settings.add("noise σ", thesis="25/255 (Fig 12)", quick=10 / 255, teaching=25 / 255, paper=50 / 255)
    assert sigma == 25 / 255
    row = settings.markdown().splitlines()[-1]
    assert row == "| noise σ | 25/255 (Fig 12) | 10/255 | **25/255** | 50/255 |  |"
