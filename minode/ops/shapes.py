"""Shape primitives (reshape, transpose, indexing, window, concatenate, stack) and their VJPs.

These move numbers around without changing them, so each VJP moves the gradient back, with
these same primitives (indexing and `_scatter` are each other's VJP, as are `window` and
`_embed`), so that gradients of every order are traced.
"""
from autograd.extend import defvjp, defvjp_argnum, primitive

from minode import backend


@primitive
def reshape(x, shape):
    """``x`` with a new shape (same number of entries)."""
    return backend.xp.reshape(x, shape)


defvjp(reshape, lambda result, x, shape: lambda grad_out: reshape(grad_out, x.shape))


def as_shape(x, shape):
    """``x`` itself when it already has ``shape``, else the differentiable `reshape`."""
    return x if x.shape == tuple(shape) else reshape(x, shape)


def ravel(x):
    """``x`` as a 1-D array."""
    return reshape(x, (-1,))


@primitive
def transpose(x, axes=None):
    """``x`` with its axes permuted (reversed when ``axes`` is None)."""
    return backend.xp.transpose(x, axes)


def _transpose_vjp(result, x, axes=None):
    inverse = None if axes is None else tuple(sorted(range(len(axes)), key=axes.__getitem__))
    return lambda grad_out: transpose(grad_out, inverse)


defvjp(transpose, _transpose_vjp)


def swapaxes(x, axis1, axis2):
    """``x`` with two axes exchanged."""
    axes = list(range(x.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, tuple(axes))


def _is_basic_index(index):
    """True for ints, slices, None and Ellipsis (no entry is selected twice)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)


@primitive
def getitem(x, index):
    """``x[index]`` for basic and integer-array indices."""
    return x[index]


@primitive
def _scatter(values, index, shape):
    """Zeros of ``shape`` with ``values`` placed at ``index``: the adjoint of ``x[index]``."""
    xp = backend.xp
    result = xp.zeros(shape, dtype=values.dtype)
    if _is_basic_index(index):
        result[index] = values
    else:  # an integer array may select an entry twice: accumulate, do not overwrite
        xp.add.at(result, index, values)
    return result


defvjp(getitem, lambda result, x, index: lambda grad_out: _scatter(grad_out, index, x.shape))
defvjp(_scatter, lambda result, values, index, shape: lambda grad_out: getitem(grad_out, index))


@primitive
def window(vector, start, shape):
    """``vector[start:start + size]`` as an array of ``shape`` (``size`` entries): one piece of a
    1-D array, such as a leaf of a flattened pytree (`minode.tree.flatten`).

    One primitive where ``reshape(getitem(...))`` would be two: the adjoint's backward pass
    unflattens the parameters at every evaluation, and each traced primitive costs time.
    """
    size = 1
    for n in shape:
        size *= n
    return backend.xp.reshape(vector[start:start + size], shape)


@primitive
def _embed(piece, start, length):
    """A 1-D array of ``length`` zeros with ``piece``'s entries at ``start``: `window`'s adjoint."""
    result = backend.xp.zeros(length, dtype=piece.dtype)
    result[start:start + piece.size] = backend.xp.reshape(piece, (-1,))
    return result


defvjp(window, lambda result, vector, start, shape: lambda grad_out: _embed(
    grad_out, start, vector.shape[0]))
defvjp(_embed, lambda result, piece, start, length: lambda grad_out: window(
    grad_out, start, piece.shape))


@primitive
def _concatenate(axis, *arrays):
    return backend.xp.concatenate(arrays, axis=axis)


def _concatenate_vjp(argnum, result, args, kwargs):
    # argnum 0 is the axis; array k is argument k + 1 and owns its slice of the result.
    axis, arrays = args[0], args[1:]
    start = 0
    for array in arrays[:argnum - 1]:
        start += array.shape[axis]
    stop = start + arrays[argnum - 1].shape[axis]
    index = [slice(None)] * result.ndim
    index[axis] = slice(start, stop)
    return lambda grad_out: getitem(grad_out, tuple(index))


defvjp_argnum(_concatenate, _concatenate_vjp)


def concatenate(arrays, axis=0):
    """Join a sequence of arrays along an existing ``axis``."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("concatenate needs at least one array, got an empty sequence")
    return _concatenate(axis % arrays[0].ndim, *arrays)


@primitive
def _stack(axis, *arrays):
    return backend.xp.stack(arrays, axis=axis)


defvjp_argnum(_stack, lambda argnum, result, args, kwargs: lambda grad_out:
              getitem(grad_out, (slice(None),) * args[0] + (argnum - 1,)))


def stack(arrays, axis=0):
    """Join a sequence of same-shape arrays along a new ``axis``."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack needs at least one array, got an empty sequence")
    return _stack(axis % (arrays[0].ndim + 1), *arrays)
