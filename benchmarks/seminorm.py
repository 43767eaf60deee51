"""Benchmark: the adjoint's backward error norm -- backward evaluations against gradient accuracy.

    python benchmarks/seminorm.py

Three norms for the error control of the backward solve of [z, a, a_theta, a_t]:

- "full": the RMS over every entry (``seminorm=False``);
- "seminorm": Kidger, Chen & Lyons 2021, the RMS over the z and a entries only
  (``seminorm=True``, `minode.adjoint.seminorm_error_ratio`);
- "zero-padded seminorm": the RMS of the error with its a_theta and a_t entries set to zero,
  still divided by every entry (a variant: the RMS over z and a times sqrt(2n / N) for N
  entries in all, so never above the full norm, and looser than the seminorm by that factor).

For each problem and tolerance it prints the backward function evaluations and the largest
relative error of the gradient (w.r.t. y0, t and the parameters; `minode.gradcheck.
relative_error` with floor 1e-3) against a reference computed with the full norm at
rtol = atol = 1e-12. Float64; the runs are deterministic, so one run of each suffices.
"""
import argparse
import os
import sys

import numpy
from autograd import grad

import minode
from minode import adjoint, ops
from minode.gradcheck import relative_error
from minode.stepping import rms_error_ratio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spiral_grad  # noqa: E402  (the spiral problem of torchdiffeq's ode_demo)


def zero_padded_seminorm(n_controlled):
    """The error ratio of the error with every entry after ``n_controlled`` set to zero."""
    def error_ratio(error, y0, y1, rtol, atol):
        n = n_controlled
        return rms_error_ratio(error[:n], y0[:n], y1[:n], rtol, atol) * (
            n / error.shape[0]) ** 0.5
    return error_ratio


def spiral_problem():
    """The spiral benchmark's first batch: 20 windows of 10 times, the initial model, L1 loss."""
    t, true_y = spiral_grad.true_data()
    y0, t_batch, batch_y = next(spiral_grad.batches(t, true_y, 1))
    return (spiral_grad.dynamics, y0, t_batch, spiral_grad.initial_params(),
            lambda ys: ops.mean(ops.absolute(ys - batch_y)))


def spiral_long_window_problem():
    """The same model and y0 solved over one window [0, 5] (the spiral's 200 data points), with
    the loss |y(5)|^2 / 2: the backward steps follow the tolerance, not the output spacing."""
    t, true_y = spiral_grad.true_data()
    y0, _, _ = next(spiral_grad.batches(t, true_y, 1))
    return (spiral_grad.dynamics, y0, numpy.array([0.0, 5.0]), spiral_grad.initial_params(),
            lambda ys: 0.5 * ops.sum(ys[-1] ** 2))


def wide_mlp_problem():
    """642 parameters against a state of 4 x 2 over a long window [0, 5] (tanh MLP)."""
    rng = numpy.random.default_rng(10)
    hidden = 128
    params = {"W1": rng.normal(0, 2 ** -0.5, (2, hidden)), "b1": rng.normal(0, 0.1, hidden),
              "W2": rng.normal(0, hidden ** -0.5, (hidden, 2)), "b2": numpy.zeros(2)}
    weights = numpy.random.default_rng(1).normal(size=(2, 4, 2))

    def mlp(y, t, p):
        return ops.matmul(ops.tanh(ops.matmul(y, p["W1"]) + p["b1"]), p["W2"]) + p["b2"]
    return (mlp, rng.normal(size=(4, 2)), numpy.array([0.0, 5.0]), params,
            lambda ys: ops.sum(weights * ys) + 0.5 * ops.sum(ys * ys))


PROBLEMS = {"spiral batch (40 state, 252 params)": spiral_problem,
            "spiral, one window [0, 5]": spiral_long_window_problem,
            "wide MLP (8 state, 642 params)": wide_mlp_problem}
TOLERANCES = [(1e-5, 1e-7), (1e-7, 1e-9), (1e-9, 1e-11)]


def gradient_and_backward_nfe(problem, seminorm, rtol, atol):
    func, y0, t, params, loss = problem
    stats = minode.SolverStats()
    gradient = grad(lambda y0, t, p: loss(minode.odeint(
        func, y0, t, p, rtol=rtol, atol=atol, seminorm=seminorm, stats=stats)), (0, 1, 2))(
        y0, t, params)
    return gradient, stats.backward.nfe


def compare(problem, rtol, atol, reference):
    """{norm: (backward NFE, relative error)} for the three norms."""
    rows = {}
    for name, seminorm, norm in [("full", False, None), ("seminorm", True, None),
                                 ("zero-padded seminorm", True, zero_padded_seminorm)]:
        kidger = adjoint.seminorm_error_ratio
        adjoint.seminorm_error_ratio = norm or kidger
        try:
            gradient, nfe = gradient_and_backward_nfe(problem, seminorm, rtol, atol)
        finally:
            adjoint.seminorm_error_ratio = kidger
        rows[name] = (nfe, relative_error(gradient, reference, floor=1e-3))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    print("| problem | rtol / atol | norm | backward NFE | max rel. error of the gradient |")
    print("|---|---|---|---:|---:|")
    for problem_name, make_problem in PROBLEMS.items():
        problem = make_problem()
        reference, _ = gradient_and_backward_nfe(problem, False, 1e-12, 1e-12)
        for rtol, atol in TOLERANCES:
            for norm, (nfe, error) in compare(problem, rtol, atol, reference).items():
                print(f"| {problem_name} | {rtol:g} / {atol:g} | {norm} | {nfe} | {error:.2e} |")


if __name__ == "__main__":
    main()
