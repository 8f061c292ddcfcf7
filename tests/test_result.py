"""Tests for dipcourse.result: what a Result reports about its own run."""
import numpy as np
import pytest
import torch

from dipcourse.result import Result


def result_with_times(times):
    times = np.asarray(times, dtype=float)
    history = {"iteration": np.arange(len(times)), "time_cpu": times, "time_wall": 2 * times}
    return Result(x=torch.zeros(1), best=torch.zeros(1), history=history)


def test_seconds_per_iteration_is_the_median_step_and_ignores_one_slow_iteration():
    run = result_with_times([0.0, 0.1, 0.2, 0.3, 5.3, 5.4])     # one iteration took 5 s (a busy machine)
    assert run.seconds_per_iteration() == pytest.approx(0.1)
    assert run.seconds_per_iteration("time_wall") == pytest.approx(0.2)


def test_seconds_per_iteration_needs_two_iterations():
    with pytest.raises(ValueError, match="at least two"):
        result_with_times([0.3]).seconds_per_iteration()


def test_final_median_is_the_median_of_the_last_tenth():
    history = {"iteration": np.arange(1, 21), "loss": np.r_[np.arange(18, 0, -1), 100.0, 0.5],
               "time_cpu": 0.1 * np.arange(1, 21)}
    run = Result(x=torch.zeros(1), best=torch.zeros(1), history=history)
    assert run.final_median("loss") == pytest.approx((100.0 + 0.5) / 2)       # the last 2 of 20
    assert run.final_median("loss", seconds=1.05) == 9.0                        # 10 done within 1.05 s: the 10th
    assert run.final_median("loss", seconds=0.01) == 18.0                       # none done yet: the first counts
