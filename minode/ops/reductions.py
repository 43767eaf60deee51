"""Reductions (sum, mean) and their VJPs: the gradient is spread back over the reduced axes."""
from autograd.extend import defvjp, primitive

from minode import backend


def _normalized_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % ndim for a in axes)


def _spread_back(grad_out, x, axis, keepdims):
    """Broadcast a reduced gradient back to ``x``'s shape."""
    xp = backend.xp
    if not keepdims:
        grad_out = xp.reshape(grad_out, [1 if a in _normalized_axes(axis, x.ndim) else n
                                         for a, n in enumerate(x.shape)])
    return xp.broadcast_to(grad_out, x.shape)


@primitive
def sum(x, axis=None, keepdims=False):  # noqa: A001 - mirrors the NumPy name on purpose
    """Sum over ``axis`` (an int, a tuple of ints, or None for all)."""
    return backend.xp.sum(x, axis=axis, keepdims=keepdims)


defvjp(sum, lambda result, x, axis=None, keepdims=False:
       lambda grad_out: _spread_back(grad_out, x, axis, keepdims))


@primitive
def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (an int, a tuple of ints, or None for all)."""
    return backend.xp.mean(x, axis=axis, keepdims=keepdims)


def _mean_vjp(result, x, axis=None, keepdims=False):
    count = 1
    for a in _normalized_axes(axis, x.ndim):
        count *= x.shape[a]
    return lambda grad_out: _spread_back(grad_out, x, axis, keepdims) / count


defvjp(mean, _mean_vjp)


@primitive
def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x))) over ``axis``, shifted by the maximum so it cannot overflow."""
    xp = backend.xp
    shift = xp.max(x, axis=axis, keepdims=True)
    total = xp.log(xp.sum(xp.exp(x - shift), axis=axis, keepdims=True)) + shift
    return total if keepdims else xp.squeeze(total, axis=axis)


def _logsumexp_vjp(result, x, axis=-1, keepdims=False):
    # d logsumexp / dx = softmax(x) along the axis.
    xp = backend.xp

    def restore(reduced):  # the reduced axis back in place (a 0-d total broadcasts as it is)
        return reduced if keepdims or axis is None else xp.expand_dims(reduced, axis)
    softmax = xp.exp(x - restore(result))
    return lambda grad_out: softmax * restore(grad_out)


defvjp(logsumexp, _logsumexp_vjp)
