"""Reductions (sum, mean, logsumexp) and their VJPs: the gradient is spread back over the reduced
axes with `broadcast_to`, whose own VJP is a sum again."""
from autograd.extend import defvjp, primitive

from minode import backend
from minode.ops.broadcasting import broadcast_to
from minode.ops.elementwise import exp
from minode.ops.shapes import reshape


def _normalized_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % ndim for a in axes)


def _kept_dims(reduced, x, axis, keepdims):
    """A reduction's result with its reduced axes back in place as size 1 (as ``keepdims``)."""
    if keepdims:
        return reduced
    axes = _normalized_axes(axis, x.ndim)
    return reshape(reduced, tuple(1 if a in axes else n for a, n in enumerate(x.shape)))


def _spread_back(grad_out, x, axis, keepdims):
    """Broadcast a reduced gradient back to ``x``'s shape."""
    return broadcast_to(_kept_dims(grad_out, x, axis, keepdims), x.shape)


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
    # d logsumexp / dx = softmax(x) = exp(x - logsumexp(x)) along the axis.
    softmax = exp(x - _kept_dims(result, x, axis, keepdims))
    return lambda grad_out: softmax * _kept_dims(grad_out, x, axis, keepdims)


defvjp(logsumexp, _logsumexp_vjp)
