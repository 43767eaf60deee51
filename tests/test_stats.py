"""SolverStats accumulates over calls, while limits such as max_steps apply to each solve."""
import numpy as np

from minode import SolverStats, odeint


def decay(y, t, params):
    return -y


def test_stats_accumulate_over_calls_and_reset():
    stats = SolverStats()
    odeint(decay, np.ones(2), np.linspace(0.0, 1.0, 3), stats=stats)
    first = stats.forward.nfe
    odeint(decay, np.ones(2), np.linspace(0.0, 1.0, 3), stats=stats)
    assert first > 0 and stats.forward.nfe == 2 * first
    stats.reset()
    assert stats.forward.nfe == stats.forward.steps == stats.backward.nfe == 0


def test_max_steps_limits_each_solve_not_the_accumulated_stats():
    stats = SolverStats()
    for _ in range(5):  # 5 x 8 steps accumulate past max_steps=10 without an error
        odeint(decay, np.ones(2), np.array([0.0, 1.0]), method="rk4", step_size=0.125,
               max_steps=10, stats=stats)
    assert stats.forward.steps == 40
