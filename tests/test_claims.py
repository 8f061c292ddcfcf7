"""The claims module: values, bounds, margins, verdicts, the table and the JSON the course runner collects."""
import json
import math

import nbformat
import pytest

from dipcourse.claims import MIMETYPE, Claims, ClaimsFailed, collect, ratio


def test_margin_is_the_distance_inside_the_bound():
    claims = Claims("lesson", profile="quick")
    low = claims.at_least("fall", [2.0, 3.0, 4.0], bound=2.5, unit="dB", statistic="mean")
    high = claims.at_most("gap", [0.2, 0.9], bound=1.0, statistic="max")
    assert low.value == 3.0 and low.margin == pytest.approx(0.5) and low.holds
    assert high.value == 0.9 and high.margin == pytest.approx(0.1) and high.holds
    assert low.spread == (2.0, 4.0)


def test_statistics_are_computed_from_the_samples():
    claims = Claims("lesson", profile="quick")
    samples = [5.0, 1.0, 2.0, 10.0]
    got = {s: claims.at_least(s, samples, 0.0, statistic=s).value for s in ("mean", "median", "min", "max")}
    assert got == {"mean": 4.5, "median": 3.5, "min": 1.0, "max": 10.0}


def test_a_claim_on_the_wrong_side_fails_and_strict_bounds_are_strict():
    claims = Claims("lesson", profile="quick")
    assert not claims.at_least("short", 0.9, bound=1.0).holds
    assert claims.at_least("equal, not strict", 1.0, bound=1.0).holds
    assert not claims.above("equal, strict", 1.0, bound=1.0).holds
    assert not claims.below("equal, strict", 1.0, bound=1.0).holds
    assert claims.at_least("short", 0.9, bound=1.0).margin == pytest.approx(-0.1)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_value_never_holds(value):
    claims = Claims("lesson", profile="quick")
    assert not claims.at_least("x", value, bound=0.0).holds
    assert not claims.at_most("x", value, bound=0.0).holds


def test_verify_raises_with_every_failing_claim_named():
    claims = Claims("lesson", profile="quick")
    claims.at_least("holds", 2.0, bound=1.0)
    claims.at_least("first failure", 0.0, bound=1.0)
    claims.at_most("second failure", 5.0, bound=1.0)
    with pytest.raises(ClaimsFailed, match="2 of 3 claims fail.*first failure.*second failure"):
        claims.verify()


def test_verify_refuses_an_empty_list():
    with pytest.raises(ClaimsFailed, match="no claims"):
        Claims("lesson", profile="quick").verify()


def test_samples_without_a_statistic_are_refused():
    with pytest.raises(ValueError, match="statistic"):
        Claims("lesson", profile="quick").at_least("x", [1.0, 2.0], bound=0.0)
    with pytest.raises(ValueError, match="direction"):
        Claims("lesson", profile="quick").add("x", 1.0, 0.0, "roughly")
    with pytest.raises(ValueError, match="at least one"):
        Claims("lesson", profile="quick").at_least("x", [], bound=0.0, statistic="mean")


def test_the_table_shows_value_bound_margin_and_verdict():
    claims = Claims("lesson", profile="quick")
    claims.at_least("fall", [2.0, 4.0], bound=2.5, unit="dB", statistic="mean")
    claims.at_most("gap", 3.0, bound=1.0)
    rows = claims.markdown().splitlines()
    assert rows[2].split("|")[1:-1] == [" fall ", " +3 dB (mean of 2) ", " >= 2.5 ", " +0.5 dB ", " 2 … 4 ", " yes "]
    assert rows[3].split("|")[1:-1] == [" gap ", " +3 ", " <= 1 ", " -2 ", "  ", " **NO** "]


def test_collect_reads_back_what_a_notebook_output_carries():
    claims = Claims("lesson", profile="quick")
    claims.at_least("fall", [2.0, 4.0], bound=2.5, statistic="mean")
    bundle = claims._repr_mimebundle_()
    output = nbformat.v4.new_output("display_data", data=bundle)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("claims.verify()", outputs=[output])])
    found = collect(json.loads(nbformat.writes(nb)))
    assert len(found) == 1 and found[0]["lesson"] == "lesson" and found[0]["profile"] == "quick"
    (claim,) = found[0]["claims"]
    assert claim["value"] == 3.0 and claim["margin"] == 0.5 and claim["holds"] and claim["samples"] == [2.0, 4.0]
    assert MIMETYPE in bundle and "text/markdown" in bundle


def test_ratio_turns_a_vanished_denominator_into_a_failing_value():
    assert ratio(3, 2) == 1.5
    assert ratio(1.0, 0.0) == math.inf and ratio(-1.0, 0.0) == -math.inf
    assert math.isnan(ratio(0.0, 0.0))
    claims = Claims("lesson", profile="quick")
    assert not claims.at_least("jumps", [ratio(4.0, 1.0), ratio(5.0, 0.0)], bound=3.0, statistic="median").holds


def test_a_non_finite_claim_survives_the_notebook_and_the_course_table():
    from dipcourse.authoring.course import claims_table

    claims = Claims("lesson", profile="quick")
    claims.at_most("dual step: residual / prior step", [ratio(1.0, 0.0), 0.2], bound=0.4, statistic="mean")
    output = nbformat.v4.new_output("display_data", data=claims._repr_mimebundle_())
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("claims.verify()", outputs=[output])])
    found = collect(json.loads(nbformat.writes(nb)))   # strict JSON all the way
    (claim,) = found[0]["claims"]
    assert claim["value"] == "inf" and claim["samples"] == ["inf", 0.2] and not claim["holds"]
    row = claims_table(found, "quick").splitlines()[-1]
    assert "| inf  (mean) |" in row and row.endswith("| NO |")
