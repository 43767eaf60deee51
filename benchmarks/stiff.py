"""Stiff problems: minode's rodas4 beside SciPy's Radau and BDF (issue 20, part 4). Prints a
Markdown table.

The problems are four of Hairer & Wanner's, "Solving Ordinary Differential Equations II"
(2nd ed., 1996), sec. IV.1 and IV.10, with the time spans, initial values and reference
solutions at the end time of the "Test Set for IVP Solvers" (F. Mazzia and C. Magherini,
University of Bari, release 2.4, 2008; the successor of Lioen & de Swart's CWI test set):

    ROBER   Robertson's chemical kinetics, n = 3, y(0) = (1, 0, 0), t in [0, 1e11]
    VDPOL   van der Pol's equation y1' = y2, y2' = mu (1 - y1^2) y2 - y1 with mu = 1000,
            y(0) = (2, 0), t in [0, 2000] (the test set's form; HW II write it in the time
            scaled by 1 / mu, y2' = ((1 - y1^2) y2 - y1) / eps with eps = 1 / mu^2 on [0, 2])
    OREGO   the Oregonator, Field & Noyes' model of the Belousov-Zhabotinskii reaction,
            n = 3, y(0) = (1, 2, 3), t in [0, 360]
    HIRES   Schaefer's "High Irradiance RESponse" of photomorphogenesis, n = 8,
            y(0) = (1, 0, 0, 0, 0, 0, 0, 0.0057), t in [0, 321.8122]; "HIRES A y" is the
            same f written as A y + b plus its one nonlinear term, with ``ops.matmul``: a
            trace of 11 nodes instead of 64

Each is solved at rtol in {1e-4, 1e-6, 1e-8} by minode's ``method="rodas4"`` (through `odeint`,
its vector field written with `minode.ops` as a user would) and by SciPy's ``solve_ivp`` with
Radau and BDF (a plain NumPy vector field, no Jacobian given: SciPy then builds it by finite
differences, as it does for a user who writes none). atol is chosen per problem, scaled with
rtol: atol = rtol for VDPOL and OREGO (entries of order 1 and more), atol = 1e-4 rtol for HIRES
and ROBER (entries down to 1e-4 and 1e-5, which a larger atol would leave uncontrolled).

Columns:

- error/tol: the global error in the mixed norm relative to the tolerance, the largest
  |y_i - ref_i| / (atol + rtol |ref_i|) over the entries and the output times. The reference is
  SciPy's Radau at rtol 1e-13 (atol 1e-7 times the problem's atol at rtol 1e-6); below the table
  it is checked against the test set's published solution at the end time.
- CPU ms: process CPU time (``time.process_time``) of one solve, the median of ``--repeats``
  solves run interleaved (minode, Radau, BDF, minode, ...), so that a busy machine slows each
  alike. SciPy's solvers are Python too, so the times compare the algorithms and their Python
  overhead, not compiled against interpreted code.
- f evals: calls of the vector field the solver reports: minode's ``SolverStats`` (one per
  Jacobian, whose trace evaluates f; its vector-Jacobian products are not counted), SciPy's
  ``nfev``, which leaves out the evaluations of its finite-difference Jacobians; "all f" counts
  every call, those included. Jacobians and LU: ``SolverStats.jacobians`` and
  ``factorisations``; SciPy's ``njev`` and ``nlu``. steps: accepted steps (rejected ones in
  parentheses) for minode; SciPy does not report them.
- CPU ratio: rodas4's CPU time over the faster of Radau's and BDF's. The issue's targets at
  rtol 1e-6 (issue 20, part 4): every problem solved, error/tol <= 10, CPU ratio <= 2.

Run:  PYTHONPATH=. python benchmarks/stiff.py [--repeats 5] [--rtols 1e-4 1e-6 1e-8]
(about two minutes with the defaults).
"""
import argparse
import dataclasses
import os
import statistics
import time
from dataclasses import dataclass

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy  # noqa: E402
import scipy.integrate  # noqa: E402

import minode  # noqa: E402
from minode import ops  # noqa: E402

SCIPY_METHODS = ("Radau", "BDF")
REFERENCE_RTOL = 1e-13


# ---------------------------------------------------------------------------------------------
# The problems: each right-hand side written once, as its list of components, and given to
# minode as func(y, t, params) = ops.stack(components) and to SciPy as a NumPy fun(t, y)
# ---------------------------------------------------------------------------------------------

def rober_terms(y):
    return [-0.04 * y[0] + 1e4 * y[1] * y[2],
            0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2,
            3e7 * y[1] ** 2]


VDPOL_MU = 1000.0


def vdpol_terms(y):
    return [y[1], VDPOL_MU * (1.0 - y[0] ** 2) * y[1] - y[0]]


def orego_terms(y):
    return [77.27 * (y[1] + y[0] * (1.0 - 8.375e-6 * y[0] - y[1])),
            (y[2] - (1.0 + y[0]) * y[1]) / 77.27,
            0.161 * (y[0] - y[2])]


def hires_terms(y):
    exchange = 280.0 * y[5] * y[7]
    return [-1.71 * y[0] + 0.43 * y[1] + 8.32 * y[2] + 0.0007,
            1.71 * y[0] - 8.75 * y[1],
            -10.03 * y[2] + 0.43 * y[3] + 0.035 * y[4],
            8.32 * y[1] + 1.71 * y[2] - 1.12 * y[3],
            -1.745 * y[4] + 0.43 * y[5] + 0.43 * y[6],
            -exchange + 0.69 * y[3] + 1.71 * y[4] - 0.43 * y[5] + 0.69 * y[6],
            exchange - 1.81 * y[6],
            -exchange + 1.81 * y[6]]


def minode_field(terms):
    """func(y, t, params) for minode's odeint."""
    return lambda y, t, params: ops.stack(terms(y))


def scipy_field(terms):
    """fun(t, y) for scipy.integrate.solve_ivp, on plain NumPy arrays."""
    return lambda t, y: numpy.array(terms(y))


# HIRES once more, written as a Neural ODE user writes a vector field: its linear part one
# matrix product, A y + b, plus the one nonlinear exchange term. The same f with a sixth of the
# nodes to trace, for rodas4's Jacobian (one trace and one backward pass per row, every step).
HIRES_A = numpy.zeros((8, 8))
HIRES_A[0, :3] = [-1.71, 0.43, 8.32]
HIRES_A[1, :2] = [1.71, -8.75]
HIRES_A[2, 2:5] = [-10.03, 0.43, 0.035]
HIRES_A[3, 1:4] = [8.32, 1.71, -1.12]
HIRES_A[4, 4:7] = [-1.745, 0.43, 0.43]
HIRES_A[5, 3:7] = [0.69, 1.71, -0.43, 0.69]
HIRES_A[6:8, 6] = [-1.81, 1.81]
HIRES_B = numpy.array([0.0007, 0, 0, 0, 0, 0, 0, 0])
HIRES_EXCHANGE = numpy.array([0, 0, 0, 0, 0, -1.0, 1.0, -1.0])


def hires_matrix_form(y, t, params):
    return ops.matmul(HIRES_A, y) + HIRES_B + (280.0 * y[5] * y[7]) * HIRES_EXCHANGE


@dataclass(frozen=True)
class Problem:
    """A stiff test problem: its vector field both ways, its output times, atol per rtol, and
    the test set's published solution at the last time."""

    name: str
    terms: object  # y -> the list of the right-hand side's components
    y0: numpy.ndarray
    times: numpy.ndarray
    atol_per_rtol: float
    published_end: numpy.ndarray

    func: object = None  # minode's func(y, t, params); None: ops.stack of the terms

    def __post_init__(self):
        if self.func is None:
            object.__setattr__(self, "func", minode_field(self.terms))

    @property
    def scipy_fun(self):
        """SciPy's fun(t, y) on plain NumPy arrays."""
        return scipy_field(self.terms)

    def atol(self, rtol):
        """The absolute tolerance that goes with ``rtol``."""
        return self.atol_per_rtol * rtol


PROBLEMS = [
    Problem("ROBER", rober_terms, numpy.array([1.0, 0.0, 0.0]),
            numpy.concatenate([[0.0], numpy.logspace(-5, 11, 17)]), 1e-4,
            numpy.array([0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050])),
    Problem("VDPOL", vdpol_terms, numpy.array([2.0, 0.0]),
            numpy.linspace(0.0, 2000.0, 21), 1.0,
            numpy.array([0.1706167732170469e+01, -0.8928097010248125e-03])),
    Problem("OREGO", orego_terms, numpy.array([1.0, 2.0, 3.0]),
            numpy.linspace(0.0, 360.0, 13), 1.0,
            numpy.array([0.1000814870318523e+01, 0.1228178521549917e+04,
                         0.1320554942846706e+03])),
    Problem("HIRES", hires_terms, numpy.array([1.0, 0, 0, 0, 0, 0, 0, 0.0057]),
            numpy.linspace(0.0, 321.8122, 11), 1e-4,
            numpy.array([0.7371312573325668e-03, 0.1442485726316185e-03, 0.5888729740967575e-04,
                         0.1175651343283149e-02, 0.2386356198831331e-02, 0.6238968252742796e-02,
                         0.2849998395185769e-02, 0.2850001604814231e-02])),
]
PROBLEMS.append(dataclasses.replace(PROBLEMS[-1], name="HIRES A y", func=hires_matrix_form))


# ---------------------------------------------------------------------------------------------
# Solving and measuring
# ---------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One solver on one problem at one tolerance: its outputs, counts and CPU times."""

    solver: str
    ys: numpy.ndarray | None = None
    failure: str = ""
    nfev: int = 0
    all_f: int = 0
    njev: int = 0
    nlu: int = 0
    steps: str = ""
    seconds: tuple = ()


def solve_minode(problem, rtol, stats=None):
    """rodas4 through `odeint`, as a user calls it."""
    return minode.odeint(problem.func, problem.y0, problem.times, method="rodas4", rtol=rtol,
                         atol=problem.atol(rtol), max_steps=1_000_000, stats=stats)


def solve_scipy(problem, method, rtol, atol=None, fun=None):
    """SciPy's ``solve_ivp`` with ``method``; y at the output times, shape (times, n)."""
    times = problem.times
    return scipy.integrate.solve_ivp(fun or problem.scipy_fun, (times[0], times[-1]), problem.y0,
                                     method=method, t_eval=times, rtol=rtol,
                                     atol=problem.atol(rtol) if atol is None else atol)


def first_run(problem, solver, rtol):
    """An untimed solve that records the outputs and the counts (every f call counted)."""
    run = Run(solver)
    if solver == "rodas4":
        stats = minode.SolverStats()
        try:
            run.ys = numpy.asarray(solve_minode(problem, rtol, stats))
        except minode.SolverError as error:
            run.failure = str(error)
            return run
        counts = stats.forward
        run.nfev = run.all_f = counts.nfe
        run.njev, run.nlu = counts.jacobians, counts.factorisations
        run.steps = f"{counts.steps} ({counts.rejected})"
        return run
    calls = [0]

    def counted(t, y):
        calls[0] += 1
        return problem.scipy_fun(t, y)
    solution = solve_scipy(problem, solver, rtol, fun=counted)
    if not solution.success:
        run.failure = solution.message
        return run
    run.ys = solution.y.T
    run.nfev, run.all_f, run.njev, run.nlu = solution.nfev, calls[0], solution.njev, solution.nlu
    return run


def cpu_seconds(problem, solver, rtol):
    """The process CPU time of one solve."""
    start = time.process_time()
    if solver == "rodas4":
        solve_minode(problem, rtol)
    else:
        solve_scipy(problem, solver, rtol)
    return time.process_time() - start


def reference(problem):
    """SciPy's Radau at rtol `REFERENCE_RTOL`: y at the output times, shape (times, n)."""
    solution = solve_scipy(problem, "Radau", REFERENCE_RTOL, atol=problem.atol(1e-6) * 1e-7)
    if not solution.success:
        raise RuntimeError(f"the reference solve of {problem.name} failed: {solution.message}")
    return solution.y.T


def mixed_error(ys, ref, rtol, atol):
    """max over entries and times of |ys - ref| / (atol + rtol |ref|)."""
    return float(numpy.max(numpy.abs(ys - ref) / (atol + rtol * numpy.abs(ref))))


def measure(problem, rtol, repeats):
    """Every solver's `Run` on ``problem`` at ``rtol``, timed ``repeats`` times interleaved."""
    solvers = ("rodas4",) + SCIPY_METHODS
    runs = {solver: first_run(problem, solver, rtol) for solver in solvers}
    timed = [solver for solver in solvers if not runs[solver].failure]
    samples = {solver: [] for solver in timed}
    for repeat in range(repeats):
        for solver in timed[repeat % len(timed):] + timed[:repeat % len(timed)]:
            samples[solver].append(cpu_seconds(problem, solver, rtol))
    for solver in timed:
        runs[solver].seconds = tuple(samples[solver])
    return runs


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

HEADER = ("| problem | rtol | atol | solver | error/tol | CPU ms | CPU ratio | f evals | all f "
          "| Jacobians | LU | steps (rejected) |")


def table_rows(problem, rtol, runs, ref):
    atol = problem.atol(rtol)
    medians = {solver: statistics.median(run.seconds) for solver, run in runs.items()
               if run.seconds}
    fastest_scipy = min((medians[m] for m in SCIPY_METHODS if m in medians), default=None)
    rows = []
    for solver, run in runs.items():
        if run.failure:
            rows.append(f"| {problem.name} | {rtol:.0e} | {atol:.0e} | {solver} | failed: "
                        f"{run.failure[:80]} | | | | | | | |")
            continue
        ratio = ""
        if solver == "rodas4" and fastest_scipy:
            ratio = f"{medians[solver] / fastest_scipy:.2f}"
        rows.append(f"| {problem.name} | {rtol:.0e} | {atol:.0e} | {solver} | "
                    f"{mixed_error(run.ys, ref, rtol, atol):.2f} | "
                    f"{1e3 * medians[solver]:.0f} | {ratio} | {run.nfev} | {run.all_f} | "
                    f"{run.njev} | {run.nlu} | {run.steps} |")
    return rows


def reference_check(problem, ref):
    """The reference at the last time against the test set's, in the mixed norm at rtol 1e-8."""
    rtol = 1e-8
    return mixed_error(ref[-1], problem.published_end, rtol, problem.atol(rtol))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed solves per solver")
    parser.add_argument("--rtols", type=float, nargs="+", default=[1e-4, 1e-6, 1e-8])
    parser.add_argument("--problems", nargs="+", default=[p.name for p in PROBLEMS])
    args = parser.parse_args()
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    checks = []
    for problem in PROBLEMS:
        if problem.name not in args.problems:
            continue
        ref = reference(problem)
        checks.append(f"{problem.name} {reference_check(problem, ref):.2g}")
        for rtol in args.rtols:
            for row in table_rows(problem, rtol, measure(problem, rtol, args.repeats), ref):
                print(row, flush=True)
    print(f"\nReference (Radau, rtol {REFERENCE_RTOL:g}) against the test set's solution at the "
          f"end time, in units of the rtol 1e-8 tolerance: " + ", ".join(checks) + ".")


if __name__ == "__main__":
    main()
