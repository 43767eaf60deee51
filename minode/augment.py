"""Augmented Neural ODEs (Dupont, Doucet & Teh 2019): solve in R^(d+p), starting at [x, 0].

The flow of an ODE in R^d is a homeomorphism, so its trajectories cannot cross: a Neural ODE
cannot map x to -x in one dimension (the paper's g_1d), nor pull a disc out of the annulus
around it (its concentric spheres g). An augmented Neural ODE (ANODE) appends p dimensions to
the state, all starting at zero, and solves

    d/dt [h(t), a(t)] = f([h(t), a(t)], t, theta),    [h(0), a(0)] = [x, 0],

so that ``func`` sees and returns states of d + p entries along the augmented axis. Its
trajectories, projected back onto the d data dimensions, may cross.

    ys = augmented_odeint(func, x, t, params, p=1)            # (len(t), ..., d): h(t)
    ys = augmented_odeint(func, x, t, params, p=1, keep_augmented=True)   # (..., d + p)

Nothing else changes: `augmented_odeint` pads ``y0`` with `zero_pad`, calls `minode.odeint`
with every solver option as given (both ``grad`` modes, batched states, any parameter pytree)
and slices the output. The zeros are constants; the gradient with respect to ``x`` is the
gradient with respect to the first d entries of the augmented initial state.
"""
import numbers

import numpy
from autograd.tracer import getval

from minode import backend, ops
from minode.odeint import odeint

__all__ = ["zero_pad", "augmented_odeint"]


def _check_p(p):
    """``p`` must be an integer >= 0 (``True`` is not an integer here)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 0:
        raise ValueError(f"p (the number of augmented dimensions) must be a non-negative "
                         f"integer, e.g. p=1, got {p!r}")


def _as_state(y0):
    """``y0`` as an array (a list or number becomes the backend's array)."""
    return y0 if hasattr(getval(y0), "shape") else backend.asarray(y0)


def _check_axis(axis, ndim):
    """``axis`` as a non-negative index into a state with ``ndim`` axes."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an integer (the axis of the state that is augmented), "
                        f"got {type(axis).__name__}")
    if ndim == 0:
        raise ValueError("y0 must have at least one axis to augment; use shape (1,) for a "
                         "scalar state")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for y0 with {ndim} axes; use an axis "
                         f"from {-ndim} to {ndim - 1} (-1, the last, for a (batch, d) state)")
    return int(axis) % ndim


def zero_pad(y0, p, axis=-1):
    """``y0`` with ``p`` zeros appended along ``axis``: the ANODE's initial state [x, 0].

    ``y0`` of shape (..., d, ...) gives (..., d + p, ...) of its dtype, differentiably in
    ``y0``; ``p = 0`` returns ``y0`` itself. ``axis`` defaults to the last (the features of a
    (batch, d) state); for NCHW images, augment the channels with ``axis=1``.
    """
    _check_p(p)
    y0 = _as_state(y0)
    value = getval(y0)
    axis = _check_axis(axis, value.ndim)
    if p == 0:
        return y0
    shape = value.shape[:axis] + (p,) + value.shape[axis + 1:]
    return ops.concatenate([y0, backend.xp.zeros(shape, dtype=value.dtype)], axis=axis)


def augmented_odeint(func, y0, t, params=None, *, p, axis=-1, keep_augmented=False,
                     **solver):
    """Solve the augmented ODE from [y0, 0] (``p`` zeros along ``axis``) with `minode.odeint`.

    Args:
        func: ``func(y, t, params)`` on the augmented state: ``y`` has d + p entries along
            ``axis`` (d = ``y0.shape[axis]``), and so must its return value.
        y0: the data, shape (..., d, ...); its other axes (a batch) are kept as they are.
        t, params: as for `minode.odeint` (a 2-D ``t`` too; ``axis`` then may not be the
            sample axis 0).
        p: how many dimensions to append, an integer >= 0; 0 solves the plain Neural ODE.
        axis: the axis of ``y0`` that is augmented (default: the last).
        keep_augmented: return the whole augmented state (d + p entries along ``axis``)
            rather than its data part h(t) (the first d entries), e.g. for a readout layer
            that reads all of it, as in the paper's classifiers.
        **solver: `minode.odeint`'s keyword arguments (method, rtol, atol, grad, stats, ...).

    Returns:
        `minode.odeint`'s output for the augmented state, sliced to its first d entries along
        ``axis`` unless ``keep_augmented``: shape (len(t),) + y0.shape (or with d + p).
    """
    y0 = _as_state(y0)
    value = getval(y0)
    _check_p(p)
    axis = _check_axis(axis, value.ndim)
    t_value = getval(t)   # an array of the backend, or a nested list as odeint takes it
    t_ndim = t_value.ndim if hasattr(t_value, "ndim") else numpy.ndim(t_value)
    if axis == 0 and t_ndim == 2:
        raise ValueError("axis 0 of y0 holds the samples when t is 2-D (one time grid per "
                         "sample); augment a feature axis instead, e.g. axis=-1")
    if not isinstance(keep_augmented, bool):
        raise TypeError(f"keep_augmented must be True or False, got {keep_augmented!r}")
    ys = odeint(func, zero_pad(y0, p, axis), t, params, **solver)
    if keep_augmented or p == 0:
        return ys
    # ys has the time axis in front of y0's axes
    index = (slice(None),) * (axis + 1) + (slice(0, value.shape[axis]),)
    return ops.getitem(ys, index)
