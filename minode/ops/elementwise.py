"""Elementwise primitives and their VJPs.

Each function is an autograd ``primitive``: autograd records the call, and the ``defvjp`` next to
it says how a gradient of the output (``grad_out``) becomes a gradient of each input. Forward
passes compute with ``backend.xp``, so the same rule serves NumPy and CuPy. The VJPs are written
with Python operators and minode's primitives (never ``backend.xp`` on a value autograd may
trace), so autograd can trace them too: each VJP is differentiable again, to every order.
"""
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from minode import backend
from minode.ops.broadcasting import unbroadcast


@primitive
def add(x, y):
    """``x + y`` with broadcasting."""
    return backend.xp.add(x, y)


defvjp(add,
       lambda result, x, y: lambda grad_out: unbroadcast(grad_out, x),
       lambda result, x, y: lambda grad_out: unbroadcast(grad_out, y))


@primitive
def subtract(x, y):
    """``x - y`` with broadcasting."""
    return backend.xp.subtract(x, y)


defvjp(subtract,
       lambda result, x, y: lambda grad_out: unbroadcast(grad_out, x),
       lambda result, x, y: lambda grad_out: unbroadcast(-grad_out, y))


@primitive
def multiply(x, y):
    """``x * y`` with broadcasting."""
    return backend.xp.multiply(x, y)


defvjp(multiply,
       lambda result, x, y: lambda grad_out: unbroadcast(grad_out * y, x),
       lambda result, x, y: lambda grad_out: unbroadcast(grad_out * x, y))


@primitive
def divide(x, y):
    """``x / y`` with broadcasting."""
    return backend.xp.divide(x, y)


defvjp(divide,
       lambda result, x, y: lambda grad_out: unbroadcast(grad_out / y, x),
       lambda result, x, y: lambda grad_out: unbroadcast(-grad_out * result / y, y))


@primitive
def negative(x):
    """``-x``."""
    return backend.xp.negative(x)


defvjp(negative, lambda result, x: lambda grad_out: -grad_out)


@primitive
def power(x, exponent):
    """``x ** exponent`` with broadcasting; the gradient w.r.t. the exponent needs ``x > 0``."""
    return backend.xp.power(x, exponent)


def _power_grad_exponent(result, x, exponent):
    # d(x^p)/dp = x^p log x, defined for x > 0; elsewhere the gradient is taken as 0.
    safe_log = log(where(x > 0, x, 1))
    return lambda grad_out: unbroadcast(grad_out * result * safe_log, exponent)


defvjp(power,
       lambda result, x, exponent: lambda grad_out: unbroadcast(
           grad_out * exponent * power(x, exponent - 1), x),
       _power_grad_exponent)


@primitive
def square(x):
    """``x ** 2``."""
    return backend.xp.square(x)


defvjp(square, lambda result, x: lambda grad_out: 2 * x * grad_out)


@primitive
def sqrt(x):
    """Square root."""
    return backend.xp.sqrt(x)


defvjp(sqrt, lambda result, x: lambda grad_out: grad_out / (2 * result))


@primitive
def absolute(x):
    """``|x|``; its derivative at 0 is taken as 0."""
    return backend.xp.abs(x)


# The sign is piecewise constant: its own derivative is 0, so it is taken of the untraced value.
defvjp(absolute, lambda result, x: lambda grad_out: grad_out * backend.xp.sign(getval(x)))


@primitive
def exp(x):
    """Exponential."""
    return backend.xp.exp(x)


defvjp(exp, lambda result, x: lambda grad_out: grad_out * result)


@primitive
def log(x):
    """Natural logarithm."""
    return backend.xp.log(x)


defvjp(log, lambda result, x: lambda grad_out: grad_out / x)


@primitive
def sin(x):
    """Sine."""
    return backend.xp.sin(x)


@primitive
def cos(x):
    """Cosine."""
    return backend.xp.cos(x)


# Written with the primitives themselves, so that these VJPs can be differentiated again.
defvjp(sin, lambda result, x: lambda grad_out: multiply(grad_out, cos(x)))
defvjp(cos, lambda result, x: lambda grad_out: negative(multiply(grad_out, sin(x))))


@primitive
def tanh(x):
    """Hyperbolic tangent."""
    return backend.xp.tanh(x)


defvjp(tanh, lambda result, x: lambda grad_out: grad_out * (1 - result * result))


@primitive
def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2 to avoid overflow."""
    return 0.5 * (backend.xp.tanh(0.5 * x) + 1)


defvjp(sigmoid, lambda result, x: lambda grad_out: grad_out * result * (1 - result))


@primitive
def relu(x):
    """max(x, 0); its derivative at 0 is taken as 0."""
    return backend.xp.maximum(x, 0)


defvjp(relu, lambda result, x: lambda grad_out: grad_out * (x > 0))


@primitive
def elu(x):
    """x for x > 0, exp(x) - 1 otherwise (alpha = 1)."""
    xp = backend.xp
    return xp.where(x > 0, x, xp.expm1(xp.minimum(x, 0)))


defvjp(elu, lambda result, x: lambda grad_out: grad_out * where(x > 0, 1, result + 1))


@primitive
def softplus(x):
    """log(1 + exp(x)), computed without overflow."""
    return backend.xp.logaddexp(0, x)


defvjp(softplus, lambda result, x: lambda grad_out: grad_out * sigmoid(x))


@primitive
def where(condition, x, y):
    """``x`` where ``condition`` holds, else ``y`` (the condition is not differentiated)."""
    return backend.xp.where(condition, x, y)


defvjp(where, None,
       lambda result, condition, x, y: lambda grad_out: unbroadcast(
           where(condition, grad_out, 0), x),
       lambda result, condition, x, y: lambda grad_out: unbroadcast(
           where(condition, 0, grad_out), y))


@primitive
def astype(x, dtype):
    """``x`` cast to ``dtype``; the gradient is cast back to ``x``'s dtype."""
    return x.astype(dtype)


defvjp(astype, lambda result, x, dtype: lambda grad_out: astype(grad_out, x.dtype))


def as_dtype(x, dtype):
    """``x`` itself when it already has ``dtype``, else the differentiable cast `astype`."""
    return x if x.dtype == dtype else astype(x, dtype)
