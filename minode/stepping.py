"""One explicit Runge-Kutta step for any tableau, its error estimate, and dense output.

These are pure functions of arrays; `minode.integrate` strings them together into a solve. The
arithmetic uses Python operators only, so autograd can trace a step ("RK-Net" backprop) on any
backend: operators on a traced NumPy array go to autograd.numpy, on a traced CuPy array to
minode's own primitives.
"""
from autograd.tracer import getval

from minode import backend

# Hairer's continuous extension of DOPRI5 (Hairer, Norsett & Wanner, "Solving ODEs I",
# sec. II.6, and the dense output of their code DOPRI5): weights of k1, k3..k7 in the 5th term.
_DOPRI5_DENSE = {0: -12715105075 / 11282082432, 2: 87487479700 / 32700410799,
                 3: -10690763975 / 1880347072, 4: 701980252875 / 199316789632,
                 5: -1453857185 / 822651844, 6: 69997945 / 29380423}

# Tsitouras' own 4th-order continuous extension (Tsitouras 2011, sec. 3; coefficients as in
# OrdinaryDiffEq's Tsit5Interp): the weight of stage i at theta is sum_j r[i][j] theta^(j+1).
# Why not cubic Hermite: its O(h^4) local error exceeds tsit5's own O(h^6) step error, so at
# tight tolerances outputs between steps were up to ~800x rtol off while the steps were fine.
_TSIT5_DENSE = ((1.0, -2.763706197274826, 2.9132554618219126, -1.0530884977290216),
                (0.0, 0.13169999999999998, -0.2234, 0.1017),
                (0.0, 3.9302962368947516, -5.941033872131505, 2.490627285651253),
                (0.0, -12.411077166933676, 30.33818863028232, -16.548102889244902),
                (0.0, 37.50931341651104, -88.1789048947664, 47.37952196281928),
                (0.0, -27.896526289197286, 65.09189467479366, -34.87065786149661),
                (0.0, 1.5, -4.0, 2.5))


def linear_combination(y, h, weights, ks):
    """y + h * sum_i weights[i] * ks[i], skipping zero weights (they are common in tableaux)."""
    increment = None
    for weight, k in zip(weights, ks):
        if weight != 0.0:
            term = weight * k
            increment = term if increment is None else increment + term
    return y if increment is None else y + h * increment


def rk_step(rhs, tableau, y, t, h, k1):
    """Advance ``y`` from ``t`` to ``t + h`` with one step of ``tableau``.

    ``k1 = rhs(y, t)`` is passed in because FSAL methods already have it from the last step.
    Returns ``(y_next, error_estimate or None, stages)``; for an FSAL tableau the last stage is
    ``rhs(y_next, t + h)``, the next step's k1.
    """
    stages = [k1]
    y_next = None
    for i in range(1, len(tableau.c)):
        y_stage = linear_combination(y, h, tableau.a[i], stages)
        stages.append(rhs(y_stage, t + tableau.c[i] * h))
        if tableau.fsal and i == len(tableau.c) - 1:
            y_next = y_stage  # the last row of a is b: this stage sits at the solution
    if y_next is None:
        y_next = linear_combination(y, h, tableau.b, stages)
    error = None
    if tableau.adaptive:
        error = linear_combination(0.0, h, tableau.b_error, stages)
    return y_next, error, stages


def interpolate(tableau, y0, y1, h, stages, theta):
    """The solution at ``t + theta * h`` inside an accepted step, 0 <= theta <= 1.

    DOPRI5 and TSIT5 use their own 4th-order continuous extensions; other FSAL tableaux the
    cubic Hermite polynomial through (y0, f0) and (y1, f1), which is 3rd-order accurate.
    """
    f0, f1 = stages[0], stages[-1]
    if tableau.dense == "tsit5":
        weights = [sum(r * theta ** (j + 1) for j, r in enumerate(row)) for row in _TSIT5_DENSE]
        return linear_combination(y0, h, weights, stages)
    if tableau.dense == "dopri5":
        delta = y1 - y0
        term3 = h * f0 - delta
        term4 = delta - h * f1 - term3
        term5 = linear_combination(0.0, h, [_DOPRI5_DENSE.get(i, 0.0) for i in range(7)],
                                   stages)
        return y0 + theta * (delta + (1 - theta) * (term3 + theta * (term4 + (1 - theta) * term5)))
    theta2, theta3 = theta * theta, theta * theta * theta
    return ((2 * theta3 - 3 * theta2 + 1) * y0 + (theta3 - 2 * theta2 + theta) * h * f0
            + (3 * theta2 - 2 * theta3) * y1 + (theta3 - theta2) * h * f1)


def rms_error_ratio(error, y0, y1, rtol, atol):
    """RMS over entries of error / (atol + rtol * max(|y0|, |y1|)); a step is accepted if <= 1.

    Takes plain (untraced) arrays and returns a Python float.
    """
    xp = backend.xp
    scale = atol + rtol * xp.maximum(xp.abs(y0), xp.abs(y1))
    return float(xp.sqrt(xp.mean(xp.square(error / scale))))


def initial_step_size(rhs, y0, f0, t0, order, rtol, atol, error_ratio):
    """Hairer's starting step (Hairer, Norsett & Wanner I, sec. II.4): one extra evaluation.

    Guess h0 from |y0| / |f0|, take one Euler step, estimate the second derivative, and choose
    h so that the local error h^(order+1) * max(|f0|, |f''|) is about 0.01 in the scaled norm.
    ``error_ratio(value, y0, y1, rtol, atol)`` is the norm used for error control.
    """
    d0 = error_ratio(y0, y0, y0, rtol, atol)
    d1 = error_ratio(f0, y0, y0, rtol, atol)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    y1 = y0 + h0 * f0
    f1 = getval(rhs(y1, t0 + h0))  # the controller is not differentiated
    d2 = error_ratio(f1 - f0, y0, y0, rtol, atol) / h0
    largest = max(d1, d2)
    if largest <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / largest) ** (1.0 / (order + 1))
    return min(100 * h0, h1)


def step_size_factor(error_ratio_value, error_order, safety=0.9, min_factor=0.2, max_factor=10.0):
    """The I controller: scale h by safety * err^(-1/(q+1)), clipped to [min, max] factors.

    The error estimate of an embedded pair of orders (p, q) behaves like h^(q+1), so this is the
    factor that would bring the next error ratio to ``safety^(q+1)``.
    """
    if error_ratio_value == 0.0:
        return max_factor
    factor = safety * error_ratio_value ** (-1.0 / (error_order + 1))
    return min(max_factor, max(min_factor, factor))
