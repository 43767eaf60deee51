"""Benchmark: second derivatives through odeint -- adjoint, backprop, central differences and a
closed form side by side (the paper's Appendix D: derivatives of every order).

    python benchmarks/hessian.py

1. y' = A y with L = |y(T)|^2 (A 3 x 3, T = 1.5): the Hessian w.r.t. y0 is 2 e^{AT}^T e^{AT}.
2. The same ODE with L = |y(t1)|^2 + |y(t2)|^2: the Hessian w.r.t. the time grid (t0, t1, t2)
   in closed form (tests/test_higher_order.py derives it; t = (0.2, 0.93, 1.64)).
3. A tanh MLP field (tests/test_higher_order.py): one Hessian-vector product w.r.t. the
   parameters; no closed form, so adjoint vs backprop vs central differences only.

"FD" is central differences (h = 1e-6) of the backprop gradient, column by column (or along the
direction, for 3). Errors are the largest entry's difference over the largest entry of the
reference. The seconds are CPU time for the whole Hessian (3 Hessian-vector products in 1 and 2,
one in 3). Float64, deterministic.
"""
import argparse
import os
import sys
import time

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from minode.gradcheck import hessian_vector_product  # noqa: E402
from minode.tree import flatten, tree_map  # noqa: E402
from test_higher_order import (full_hessian, gradient_difference_quotient,  # noqa: E402
                               linear_final_value_loss, linear_final_value_problem,
                               linear_time_grid_loss, linear_time_grid_problem, mlp_loss,
                               mlp_problem)

SOLVERS = {"dopri5 rtol=atol=1e-6": dict(method="dopri5", rtol=1e-6, atol=1e-6),
           "dopri5 rtol=atol=1e-8": dict(method="dopri5", rtol=1e-8, atol=1e-8),
           "dopri5 rtol=atol=1e-10": dict(method="dopri5", rtol=1e-10, atol=1e-10),
           "rk4 h=0.1": dict(method="rk4", step_size=0.1),
           "rk4 h=0.05": dict(method="rk4", step_size=0.05)}


def wrt_y0():
    """(loss of (grad mode, options), the point, the exact Hessian there)."""
    y0, exact = linear_final_value_problem()
    return linear_final_value_loss, y0, exact


def wrt_time_grid():
    y0, t, exact = linear_time_grid_problem()
    return lambda grad_mode, options: linear_time_grid_loss(grad_mode, options, y0), t, exact


def finite_difference_hessian(loss, x):
    """Central differences of the gradient, one column per unit vector."""
    return numpy.stack([gradient_difference_quotient(loss, x, unit)
                        for unit in numpy.eye(x.shape[0])], axis=1)


def error(x, reference):
    return abs(x - reference).max() / abs(reference).max()


def timed(function, *args):
    start = time.process_time()
    return function(*args), time.process_time() - start


def closed_form_rows(name, problem):
    loss, x, exact = problem()
    for solver, options in SOLVERS.items():
        adjoint, adjoint_seconds = timed(full_hessian, loss("adjoint", options), x)
        backprop, backprop_seconds = timed(full_hessian, loss("backprop", options), x)
        fd = finite_difference_hessian(loss("backprop", options), x)
        print(f"| {name} | {solver} | {error(adjoint, exact):.1e} | {error(backprop, exact):.1e}"
              f" | {error(fd, exact):.1e} | {error(adjoint, backprop):.1e} | "
              f"{adjoint_seconds:.2f} / {backprop_seconds:.2f} |")


def mlp_rows():
    y0, t, params = mlp_problem()
    rng = numpy.random.default_rng(5)
    direction = tree_map(lambda leaf: rng.normal(size=leaf.shape), params)
    for solver, options in SOLVERS.items():
        hvps = {}
        for mode in ("adjoint", "backprop"):
            fun = lambda p, mode=mode: mlp_loss(mode, options)(y0, t, p)  # noqa: E731
            hvps[mode], hvps[mode + " seconds"] = timed(
                lambda: flatten(hessian_vector_product(fun, [params], [direction]))[0])
        fd = gradient_difference_quotient(lambda p: mlp_loss("backprop", options)(y0, t, p),
                                          params, direction)
        print(f"| tanh MLP, H v w.r.t. params | {solver} | - | - | "
              f"{error(hvps['adjoint'], fd):.1e} (adjoint vs FD) | "
              f"{error(hvps['adjoint'], hvps['backprop']):.1e} | "
              f"{hvps['adjoint seconds']:.2f} / {hvps['backprop seconds']:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    print("| Hessian | solver | adjoint vs closed form | backprop vs closed form | "
          "FD vs closed form | adjoint vs backprop | CPU s adjoint / backprop |")
    print("|---|---|---:|---:|---:|---:|---:|")
    closed_form_rows("linear ODE, w.r.t. y0", wrt_y0)
    closed_form_rows("linear ODE, w.r.t. (t0, t1, t2)", wrt_time_grid)
    mlp_rows()


if __name__ == "__main__":
    main()
