"""Benchmark: the three-way gradient table -- adjoint, backprop and central differences agree.

    python benchmarks/gradient_table.py [--method dopri5] [--tol 1e-10]

For each problem of tests/test_gradients.py (a linear field, a tanh MLP, a time-dependent field,
a batch of states, 7 output times, a decreasing time grid) it computes dL/dy0, dL/dt and
dL/dparams by the adjoint (Chen et al. 2018, Algorithm 1), by backprop through the solver and
by central differences (h = 1e-6) with `minode.gradcheck.compare_gradients`, and prints the
largest entry-wise relative difference (`minode.gradcheck.relative_error`) of each pair. The
tests assert every entry below 1e-5 at rtol = atol = 1e-10; this prints the numbers. Float64,
deterministic.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from minode.gradcheck import compare_gradients  # noqa: E402
from test_gradients import PROBLEMS  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="dopri5", help="odeint method (default dopri5)")
    parser.add_argument("--tol", type=float, default=1e-10, help="rtol = atol (default 1e-10)")
    args = parser.parse_args()
    print(f"{args.method}, rtol = atol = {args.tol:g}; entries: largest relative difference "
          "w.r.t. y0 / t / params\n")
    print("| problem | adjoint vs FD | backprop vs FD | adjoint vs backprop |")
    print("|---|---:|---:|---:|")
    for name, problem in PROBLEMS.items():
        func, y0, t, params, loss = problem()
        comparison = compare_gradients(loss, func, y0, t, params, method=args.method,
                                       rtol=args.tol, atol=args.tol)
        cells = [" / ".join(f"{errors[wrt]:.1e}" for wrt in ("y0", "t", "params"))
                 for errors in comparison.errors.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
