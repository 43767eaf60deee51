"""How accurate are minode's Runge-Kutta solvers? Prints two Markdown tables.

1. Measured convergence slopes of every tableau: the slope of log(error) against log(h)
   - of fixed-step solves (adaptive tableaux too, run with a fixed step through the engine) on the
     linear spiral dz/dt = A z and on the nonlinear, non-autonomous dy/dt = -2 t y^2,
   - of the embedded error estimate and of the dense-output interpolant over single steps.
2. Error against tolerance: bosh3, dopri5 and tsit5 at rtol = atol in {1e-3, 1e-6, 1e-9} on the
   spiral, Van der Pol (mu = 1) and Lotka-Volterra, against SciPy's DOP853 at 1e-12, at 41 output
   times on [0, 10]. Entries: max absolute global error, the same in units of the tolerance
   (max |err| / (atol + rtol |y|)), and the number of function evaluations.

Run:  python benchmarks/solver_accuracy.py     (a few seconds; tests/test_solvers.py checks the
same properties with thresholds).
"""
import math

import numpy
import scipy.integrate

import minode
from minode import odeint
from minode.integrate import SolveOptions, integrate
from minode.stats import Counts
from minode.stepping import interpolate, rk_step
from minode.tableaux import TABLEAUX

SPIRAL_A = numpy.array([[-0.1, -1.0], [1.0, -0.1]])
SPIRAL_Z0 = numpy.array([2.0, 0.0])
TOLERANCES = [1e-3, 1e-6, 1e-9]
ADAPTIVE = ["bosh3", "dopri5", "tsit5"]


def spiral_exact(t):
    """expm(A t) z0: a decay e^(-0.1 t) times a rotation by t."""
    c, s = math.cos(t), math.sin(t)
    return math.exp(-0.1 * t) * numpy.array([c * SPIRAL_Z0[0] - s * SPIRAL_Z0[1],
                                             s * SPIRAL_Z0[0] + c * SPIRAL_Z0[1]])


def rational(y, t):
    return -2.0 * t * y * y


def rational_exact(t):
    return numpy.array([1.0 / (1.0 + t * t)])


def slope(step_sizes, errors):
    return float(numpy.polyfit(numpy.log(step_sizes), numpy.log(errors), 1)[0])


def fixed_step_slope(tableau, rhs, y0, t_end, exact, n_steps):
    errors = []
    for n in n_steps:
        outputs, _ = integrate(rhs, y0, [0.0, t_end], SolveOptions(tableau, step_size=t_end / n),
                               Counts())
        errors.append(float(numpy.max(numpy.abs(outputs[-1] - exact))))
    return slope([t_end / n for n in n_steps], errors)


def single_step_slopes(tableau, t0=1.5):
    """Slopes of the error estimate and of the interpolant's error over one step from t0."""
    y0 = rational_exact(t0)
    estimate_steps, estimates = [0.05 / 2 ** k for k in range(4)], []
    for h in estimate_steps:
        _, error, _ = rk_step(rational, tableau, y0, t0, h, rational(y0, t0))
        estimates.append(float(numpy.max(numpy.abs(error))))
    dense_steps, dense_errors = [0.2 / 2 ** k for k in range(4)], []
    for h in dense_steps:
        y1, _, stages = rk_step(rational, tableau, y0, t0, h, rational(y0, t0))
        dense_errors.append(max(
            float(numpy.max(numpy.abs(interpolate(tableau, y0, h, stages, theta)
                                      - rational_exact(t0 + theta * h))))
            for theta in (0.25, 0.5, 0.75)))
    return slope(estimate_steps, estimates), slope(dense_steps, dense_errors)


def convergence_table():
    lines = ["| tableau | order | spiral, fixed step | -2ty^2, fixed step "
             "| error estimate (expected) | interpolant local error (expected) |",
             "|---|---|---|---|---|---|"]
    for name, tableau in TABLEAUX.items():
        spiral_slope = fixed_step_slope(tableau, lambda y, t: SPIRAL_A @ y, SPIRAL_Z0, 10.0,
                                        spiral_exact(10.0), [160, 320, 640])
        rational_slope = fixed_step_slope(tableau, rational, numpy.array([1.0]), 2.0,
                                          rational_exact(2.0), [40, 80, 160])
        if tableau.adaptive:
            estimate_slope, dense_slope = single_step_slopes(tableau)
            extra = (f"{estimate_slope:.2f} ({tableau.error_order + 1}) | "
                     f"{dense_slope:.2f} ({tableau.dense.order + 1}, {tableau.dense.name})")
        else:
            extra = "- | -"
        lines.append(f"| {name} | {tableau.order} | {spiral_slope:.2f} | {rational_slope:.2f} "
                     f"| {extra} |")
    return "\n".join(lines)


def spiral(y, t, params):
    return y @ SPIRAL_A.T


def van_der_pol(y, t, params):
    return numpy.array([y[1], (1.0 - y[0] ** 2) * y[1] - y[0]])


def lotka_volterra(y, t, params):
    prey, predator = y
    return numpy.array([1.5 * prey - prey * predator, -3.0 * predator + prey * predator])


PROBLEMS = {"spiral": (spiral, SPIRAL_Z0), "van der Pol": (van_der_pol, numpy.array([2.0, 0.0])),
            "Lotka-Volterra": (lotka_volterra, numpy.array([1.0, 1.0]))}


def tolerance_table():
    header = " | ".join(f"tol {tol:.0e}" for tol in TOLERANCES)
    lines = [f"| problem | method | {header} |", "|---|---|" + "---|" * len(TOLERANCES)]
    times = numpy.linspace(0.0, 10.0, 41)
    for problem, (func, y0) in PROBLEMS.items():
        reference = scipy.integrate.solve_ivp(lambda t, y: func(y, t, None), (0.0, 10.0), y0,
                                              method="DOP853", t_eval=times, rtol=1e-12,
                                              atol=1e-12).y.T
        for method in ADAPTIVE:
            cells = []
            for tol in TOLERANCES:
                stats = minode.SolverStats()
                ys = odeint(func, y0, times, method=method, rtol=tol, atol=tol,
                            max_steps=100_000, stats=stats)
                error = numpy.abs(ys - reference)
                scaled = float(numpy.max(error / (tol + tol * numpy.abs(reference))))
                cells.append(f"{error.max():.1e} ({scaled:.0f}x tol), {stats.forward.nfe} NFE")
            lines.append(f"| {problem} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print("## Convergence slopes (log error vs log h)\n")
    print(convergence_table())
    print("\n## Global error vs tolerance (rtol = atol = tol, 41 output times on [0, 10])\n")
    print("Entries: max |error| against SciPy DOP853 at 1e-12, the same in units of the "
          "tolerance (max |error| / (atol + rtol |y|)), and function evaluations.\n")
    print(tolerance_table())
