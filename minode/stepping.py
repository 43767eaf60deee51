"""One explicit Runge-Kutta step for any tableau, its error estimate, and dense output.

These are pure functions of arrays; `minode.integrate` strings them together into a solve. The
arithmetic uses Python operators only, so autograd can trace a step ("RK-Net" backprop) on any
backend: operators on a traced NumPy array go to autograd.numpy, on a traced CuPy array to
minode's own primitives.
"""
from autograd.tracer import getval

from minode import backend


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
    coefficients = tableau.floats
    stages = [k1]
    for i in range(1, len(coefficients.c)):
        y_stage = linear_combination(y, h, coefficients.a[i], stages)
        stages.append(rhs(y_stage, t + coefficients.c[i] * h))
    if tableau.fsal:
        y_next = y_stage  # the last row of a is b: the last stage sits at the solution
    else:
        y_next = linear_combination(y, h, coefficients.b, stages)
    error = None
    if tableau.adaptive:
        error = linear_combination(0.0, h, coefficients.b_error, stages)
    return y_next, error, stages


def interpolate(tableau, y0, h, stages, theta):
    """The solution at ``t + theta * h`` inside an accepted step, 0 <= theta <= 1.

    The tableau's continuous extension y0 + h sum_i b_i(theta) k_i (Hairer, Norsett & Wanner I,
    sec. II.6), with the polynomials b_i(theta) of ``tableau.dense`` (`minode.tableaux`).
    """
    dense = tableau.floats.dense
    if dense is None:
        raise ValueError(f"tableau {tableau.name!r} has no dense output")
    weights = [sum(w * theta ** (power + 1) for power, w in enumerate(row)) for row in dense]
    return linear_combination(y0, h, weights, stages)


def rms_error_ratio(error, y0, y1, rtol, atol):
    """RMS over entries of error / (atol + rtol * max(|y0|, |y1|)); a step is accepted if <= 1.

    Takes plain (untraced) arrays and returns a Python float. An empty state (size 0) has
    nothing to control: its ratio is 0, so every step is accepted and the next one grows by the
    controller's largest factor (the mean of no entries would be NaN).
    """
    if error.size == 0:
        return 0.0
    xp = backend.xp
    scale = atol + rtol * xp.maximum(xp.abs(y0), xp.abs(y1))
    return float(xp.sqrt(xp.mean(xp.square(error / scale))))


def initial_step_size(rhs, y0, f0, t0, order, rtol, atol, error_ratio, max_step):
    """Hairer's starting step (Hairer, Norsett & Wanner I, sec. II.4): one extra evaluation.

    Guess h0 from |y0| / |f0|, take one Euler step, estimate the second derivative, and choose
    h so that the local error h^(order+1) * max(|f0|, |f''|) is about 0.01 in the scaled norm.
    ``error_ratio(value, y0, y1, rtol, atol)`` is the norm used for error control.
    ``max_step`` > 0, the span of the solve, caps both the probe step h0 and the result, so
    ``rhs`` is only evaluated inside [t0, t0 + max_step] (the estimate can exceed a short span
    many times over: 0.01 |y0| / |f0|, or 1e-6 for a zero derivative).
    """
    d0 = error_ratio(y0, y0, y0, rtol, atol)
    d1 = error_ratio(f0, y0, y0, rtol, atol)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, max_step)
    y1 = y0 + h0 * f0
    f1 = getval(rhs(y1, t0 + h0))  # the controller is not differentiated
    d2 = error_ratio(f1 - f0, y0, y0, rtol, atol) / h0
    largest = max(d1, d2)
    if largest <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / largest) ** (1.0 / (order + 1))
    return min(100 * h0, h1, max_step)


def step_size_factor(error_ratio_value, error_order, safety=0.9, min_factor=0.2, max_factor=10.0):
    """The I controller: scale h by safety * err^(-1/(q+1)), clipped to [min, max] factors.

    The error estimate of an embedded pair of orders (p, q) behaves like h^(q+1), so this is the
    factor that would bring the next error ratio to ``safety^(q+1)``.
    """
    if error_ratio_value == 0.0:
        return max_factor
    factor = safety * error_ratio_value ** (-1.0 / (error_order + 1))
    return min(max_factor, max(min_factor, factor))
