"""Does a failing explicit solve look stiff? Hairer's estimate, from stages a step already has.

The estimate (Hairer & Wanner, "Solving ODEs II", sec. IV.2, "stiffness detection", and the
code DOPRI5 of Hairer, Norsett & Wanner I). Two stages evaluated at the same time t + c h, at
the arguments Y_i and Y_j, give

    rho = |k_j - k_i| / |Y_j - Y_i|,

an estimate of |lambda| for the dominant eigenvalue of df/dy: for a linear f it is |J v| / |v|
with v = Y_j - Y_i, and v is dominated by the stiff mode once instability amplifies it. The
step is held back by stability, not accuracy, when h * rho sits at the stability boundary of the
method (3.31 on the negative real axis for DOPRI5, whose code tests h * rho > 3.25).

Generalised to any adaptive tableau of `minode.tableaux`: a combination of stages
sum_i w_i k_i with sum_i w_i = 0 and sum_i w_i c_i = 0 has, for f(y, t) = J y + g0 + g1 t,

    sum_i w_i k_i = J sum_i w_i Y_i,   sum_i w_i Y_i = h sum_j v_j k_j,   v = w^T A,

(Y_i = y + h sum_j a_ij k_j), so h * rho = |sum_i w_i k_i| / |sum_j v_j k_j| needs no new
evaluation and not even h. Two stages at the same c, w = (-1, 1), are Hairer's choice (dopri5
and tsit5: the last two, both at c = 1, the last at the new solution). A tableau without such
a pair (bosh3: c = 0, 1/2, 3/4, 1) takes the second difference of its first stage, its last
and the one nearest midway between them.

The boundary is each tableau's own: the largest x with |R(-s)| <= 1 on [0, x], where
R(z) = 1 + sum_k z^k b^T A^(k-1) 1 is its stability polynomial (sec. IV.2).

The verdict, on the last `RECENT_STEPS` = 50 tested steps (at least `FEWEST_STEPS`). A
controller held by stability keeps h * rho at the boundary, while accuracy holds it lower on a
problem that is not stiff. Measured with bosh3, dopri5 and tsit5 at rtol = 1e-2, 1e-3, 1e-6,
1e-7 and 1e-9 (atol = rtol, but 1e-2 rtol at 1e-7, minode's defaults, and 1e-3 rtol for
Robertson) and max_steps = 4000: the median of h * rho over the 50 tests before max_steps ran
out was 0.90 to 1.05 boundaries on Van der Pol (mu = 1000), Robertson, a 50-point heat equation
and a linear system with eigenvalues -1000 +- 500i; over any 50 tests of a harmonic oscillator
(omega = 100), y' = y^2 up to its blow-up, Van der Pol (mu = 1), Lotka-Volterra, Kepler
(e = 0.9), Lorenz and y' = tanh(W y) (64 states) it stayed at most 0.46 boundaries at
rtol <= 1e-3 and 0.73 at 1e-2. So a median of `AT_BOUNDARY` = 0.8 boundaries is stiff.

At tight tolerances the controller can settle inside the boundary, held there by the error
estimate of the fast mode: Prothero-Robinson (y' = -1000 (y - cos t) - sin t) with dopri5 at
the defaults sits at 0.62 boundaries (Robertson with dopri5 at rtol 1e-2 cycles at a median of
0.46, one step in three beyond the boundary). rho is then hundreds of times the rate |f| / |y|
at which the solution itself changes, where accuracy-limited steps are set by that rate: on the
non-stiff problems above the median of rho / rate stayed under 10 at rtol <= 1e-3 and under 40
at 1e-2 wherever the median h * rho reached 0.25 boundaries. So a median of `NEAR_BOUNDARY` =
0.25 boundaries with a median rho of at least `FASTER` = 100 times that rate is stiff too. (The
rate is relative, so it is large while the solution passes through zero: Prothero-Robinson
with tsit5 that runs out of steps near cos t = 0 is not called stiff.)

With both, every test of the non-stiff runs had the verdict "not stiff", bar three at rtol 1e-2
whose steps stability does hold (bosh3 on the oscillator, at the edge of its interval on the
imaginary axis; tsit5 and bosh3 on Lotka-Volterra, whose state turns negative and then grows a
fast mode); every run of the stiff problems and of Prothero-Robinson (forward and backward in
time) that ran out of max_steps had the verdict "stiff", bar bosh3 at rtol 1e-9 on Robertson
and at rtol <= 1e-7 on Prothero-Robinson. There bosh3's estimate fails: its second difference
also carries the solution's own curvature, O(h^2) in numerator and denominator alike (Hairer's
pair cancels it to the order of the stage), and where the fast mode sits far below the
tolerance that curvature dominates: on Prothero-Robinson at the defaults bosh3 reads 0.18
boundaries for a true h * |lambda| of 0.58. The stiffness is then missed, not invented, and
the error gives the advice for a problem that is not stiff. DOPRI5's own rule, 15 steps above
3.25 without 6 in a row below, counts the spikes of the estimate on bosh3's oscillator at rtol
1e-3 as stiff and never counts the complex eigenvalues above (held at 0.94 of bosh3's real
boundary) nor Prothero-Robinson at the defaults.

`StiffnessMonitor` computes the estimate from the stages of accepted steps (a few vector
operations on untraced arrays the step has, so no step and no result changes): on every
accepted step while the solve might be stiff, on every `TEST_EVERY`-th once `QUIET_STEPS` tests
in a row were far from it, as DOPRI5 tests every NSTIFF-th step until one looks stiff. It
writes the part of a `minode.integrate.SolverError` that says the failure looks stiff.
"""
import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction as F
from typing import NamedTuple

import numpy
from autograd.tracer import getval

from minode import backend

__all__ = ["IMPLICIT_METHODS", "StiffnessProbe", "StiffnessMonitor", "stiffness_probe",
           "real_stability_boundary", "use_implicit_methods"]

IMPLICIT_METHODS = ("rodas4", "scipy:Radau", "scipy:BDF", "scipy:LSODA")
RECENT_STEPS = 50  # the accepted steps a verdict looks back on
FEWEST_STEPS = 15  # no verdict on fewer (DOPRI5 also wants 15 steps at the boundary)
TEST_EVERY = 10  # a quiet solve is tested on every 10th accepted step (DOPRI5: NSTIFF)
QUIET_STEPS = 6  # ... once this many tests in a row looked far from stiff (DOPRI5: 6)
AT_BOUNDARY = 0.8  # a median h * rho this close to the boundary is stiff, whatever the solution
NEAR_BOUNDARY = 0.25  # ... and one this close, if rho is `FASTER` times the solution's own rate
FASTER = 100


def real_stability_boundary(tableau):
    """The largest x > 0 with |R(-s)| <= 1 for all s in [0, x], R the stability polynomial.

    R(z) = sum_k gamma_k z^k with gamma_0 = 1 and gamma_k = b^T A^(k-1) 1, from the exact
    coefficients; the first s where |R(-s)| exceeds 1 is found on a grid of 1e-3 and refined by
    bisection. Explicit methods have a bounded stability region, so the search ends.
    """
    gammas, powers = [F(1)], [F(1)] * len(tableau.c)  # powers = A^(k-1) 1
    for _ in tableau.c:
        gammas.append(sum(b_i * p_i for b_i, p_i in zip(tableau.b, powers)))
        powers = [sum(a_ij * p_j for a_ij, p_j in zip(row, powers)) for row in tableau.a]
    polynomial = numpy.polynomial.Polynomial([float(g) * (-1) ** k for k, g in enumerate(gammas)])
    grid = numpy.arange(1, 2000 * len(tableau.c) ** 2 + 1001) * 1e-3  # past 2 s^2, a bound
    low, high = grid[numpy.argmax(numpy.abs(polynomial(grid)) > 1) - 1:][:2]
    for _ in range(50):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if abs(polynomial(middle)) <= 1 else (low, middle)
    return float(low)


@dataclass(frozen=True)
class StiffnessProbe:
    """The stage weights of one tableau's h * |lambda| estimate, and its stability boundary.

    h * rho = |sum_i numerator_i k_i| / |sum_j denominator_j k_j| (module docstring), each a
    tuple of (stage index, weight) pairs with nonzero weights; ``boundary`` is
    `real_stability_boundary` of the tableau.
    """

    numerator: tuple
    denominator: tuple
    boundary: float

    def h_lambda(self, stages, scale):
        """The estimate h * |lambda| from the stages of one step (0 where it is undefined).

        Norms are Euclidean after dividing each component by ``scale``.
        """
        xp = backend.xp
        along = _weighted_sum(self.numerator, stages) / scale
        across = _weighted_sum(self.denominator, stages) / scale
        along, across = float(xp.vdot(along, along)), float(xp.vdot(across, across))
        if not across > 0.0 or not math.isfinite(along / across):
            return 0.0  # stages too alike (or not finite) to tell anything
        return math.sqrt(along / across)


def _weighted_sum(pairs, stages):
    """sum_i w_i k_i over the (i, w_i) ``pairs``, on the untraced stages (+-1 not multiplied)."""
    total = None
    for i, weight in pairs:
        k = getval(stages[i])
        if total is None:
            total = k if weight == 1.0 else weight * k
        elif abs(weight) == 1.0:
            total = total + k if weight > 0 else total - k
        else:
            total = total + weight * k
    return total


_PROBES = {}  # id(tableau) -> (tableau, probe): a tableau's hash walks all its coefficients


def stiffness_probe(tableau):
    """The `StiffnessProbe` of an adaptive tableau; None when no stage combination fits."""
    cached = _PROBES.get(id(tableau))
    if cached is None or cached[0] is not tableau:
        cached = _PROBES[id(tableau)] = (tableau, _build_probe(tableau))
    return cached[1]


def _build_probe(tableau):
    weights = _same_time_weights(tableau.c)
    if weights is None:
        return None
    rows = [row + (F(0),) * (len(tableau.c) - len(row)) for row in tableau.a]
    across = [sum(w_i * row[j] for w_i, row in zip(weights, rows)) for j in range(len(rows))]
    return StiffnessProbe(_nonzero(weights), _nonzero(across), real_stability_boundary(tableau))


def _nonzero(weights):
    return tuple((i, float(w)) for i, w in enumerate(weights) if w != 0)


def _same_time_weights(c):
    """Stage weights w with sum w = 0 and sum w c = 0 (module docstring), or None."""
    last = len(c) - 1
    for j in range(last, 0, -1):
        for i in range(j - 1, 0, -1):
            if c[i] == c[j]:
                return tuple(F(1) if k == j else F(-1) if k == i else F(0)
                             for k in range(len(c)))
    if last < 2:
        return None
    middle = min(range(1, last), key=lambda k: abs(2 * c[k] - c[0] - c[last]))
    if len({c[0], c[middle], c[last]}) < 3:
        return None
    weights = {0: c[last] - c[middle], last: c[middle] - c[0], middle: c[0] - c[last]}
    return tuple(weights.get(k, F(0)) for k in range(len(c)))


def use_implicit_methods():
    """The advice that ends a stiffness diagnosis: the implicit methods to use, by name."""
    names = [f'"{name}"' for name in IMPLICIT_METHODS]
    return f"use an implicit method (method={', '.join(names[:-1])} or {names[-1]})"


class StiffnessMonitor:
    """The stiffness test on the accepted steps of one adaptive explicit solve.

    `record` each accepted step; `appears_stiff` is the verdict on the last `RECENT_STEPS`
    tested and `evidence` the numbers behind it, for an error message. As in DOPRI5, a solve
    that looks far from stiff is tested on every `TEST_EVERY`-th accepted step only: after
    `QUIET_STEPS` tests in a row that neither rule would count as stiff, until one is.
    """

    def __init__(self, tableau, direction):
        self.tableau_name = tableau.name
        self.probe = stiffness_probe(tableau) if tableau.adaptive else None
        self.direction = direction  # the caller's t is direction * the engine's time
        self.recent = deque(maxlen=RECENT_STEPS)  # a `_Step` per recent tested step
        self.accepted = 0
        self.quiet = 0  # tests in a row below NEAR_BOUNDARY

    def record(self, stages, h, t, y, rtol, atol):
        """Test the accepted step of size ``h`` from engine time ``t`` and state ``y``.

        Norms of the estimate are weighted by the error-control scale atol + rtol |y|, so it
        does not depend on the units of the components (the Euclidean norm of DOPRI5 reads a
        harmonic oscillator y'' = -omega^2 y as far stiffer than it is). The solution's own
        rate is |f| / |y|, with f = stages[0] = f(y, t).
        """
        self.accepted += 1
        if self.probe is None or (self.quiet >= QUIET_STEPS
                                  and self.accepted % TEST_EVERY):
            return
        xp = backend.xp
        y = getval(y)
        h_lambda = self.probe.h_lambda(stages, atol + rtol * xp.abs(y))
        f = getval(stages[0])
        rate = math.sqrt(float(xp.vdot(f, f)) / max(float(xp.vdot(y, y)), _TINY))
        step = _Step(h_lambda, h, self.direction * float(getval(t)),
                     h_lambda / max(h * rate, _TINY))
        self.recent.append(step)
        self.quiet = 0 if self._counts_towards_stiff(step) else self.quiet + 1

    def _counts_towards_stiff(self, step):
        """True for a step that either rule of `appears_stiff` would count as stiff."""
        held = step.h_lambda / self.probe.boundary
        return held >= AT_BOUNDARY or (held >= NEAR_BOUNDARY and step.fast >= FASTER)

    def _median(self, field):
        return float(numpy.median([getattr(step, field) for step in self.recent]))

    def _typical_step(self):
        return _Step(*(self._median(field) for field in _Step._fields))

    @property
    def can_tell(self):
        """True once enough accepted steps were tested for a verdict (or the last
        `QUIET_STEPS` tests, of at least `FEWEST_STEPS` accepted steps, all looked far from
        stiff)."""
        return len(self.recent) >= FEWEST_STEPS or (self.accepted >= FEWEST_STEPS
                                                    and self.quiet >= QUIET_STEPS)

    @property
    def appears_stiff(self):
        """True when the recent steps were held at the stability boundary, or near it by a
        mode much faster than the solution (module docstring)."""
        return len(self.recent) >= FEWEST_STEPS and self._counts_towards_stiff(
            self._typical_step())

    def evidence(self):
        """Why the solve appears stiff: h * |lambda| of the recent steps and what it implies."""
        boundary, name = self.probe.boundary, self.tableau_name
        values = sorted(step.h_lambda for step in self.recent)
        median, h = self._median("h_lambda"), self._median("h")
        rate = median / h
        seen = (f"the problem appears stiff: on {len(values)} recent accepted steps (since "
                f"t={self.recent[0].t:.6g}) Hairer's estimate of h*|lambda| had median "
                f"{median:.3g} (range {values[0]:.3g} to {values[-1]:.3g})")
        if median >= AT_BOUNDARY * boundary:
            return (f"{seen}, at the stability boundary {boundary:.3g} of {name} on the "
                    f"negative real axis: stability, not accuracy, limits the steps (|lambda| ~ "
                    f"{rate:.3g}, so {name} cannot take steps much longer than "
                    f"{boundary / rate:.3g}, however smooth the solution)")
        return (f"{seen}, {median / boundary:.2f} of the stability boundary {boundary:.3g} of "
                f"{name} on the negative real axis, with |lambda| ~ {rate:.3g}, about "
                f"{self._median('fast'):.3g} times the rate at which the solution itself "
                f"changes: a fast mode, not the solution, holds the steps near {h:.3g}")


_TINY = 1e-300  # keeps a ratio finite where a norm is zero


class _Step(NamedTuple):
    """One accepted step as the verdict sees it: h * rho, h, the caller's t at its start, and
    rho over the solution's own rate |f| / |y| ("fast": how much faster the fastest mode is)."""

    h_lambda: float
    h: float
    t: float
    fast: float
