"""Group normalisation (Wu & He 2018) without the affine part, and its VJP.

Per sample, the channels are split into ``groups`` groups and each group is standardised over its
channels and all spatial positions:

    xhat = (x - mean) / std,   std = sqrt(var + eps),   mean and (biased) var over the group.

No statistic crosses the batch axis, so a Neural ODE's dynamics stay per-sample (batch norm
inside an ODE function would make one sample's derivative depend on the others). The learnable
scale and shift are applied by `minode.nn.group_norm` with broadcasting multiply and add.
"""
from types import SimpleNamespace

from autograd.extend import defvjp, primitive
from autograd.tracer import isbox

from minode import backend
from minode.ops.elementwise import sqrt, square
from minode.ops.reductions import mean
from minode.ops.shapes import reshape

# The VJP below calls these primitives when one of its inputs is traced (a higher derivative),
# and otherwise (the adjoint's first-order backward pass) the plain functions they wrap: the
# same arithmetic without autograd's check of every argument for a box, some 10 calls per
# group norm per evaluation.
_PRIMITIVES = SimpleNamespace(mean=mean, reshape=reshape, sqrt=sqrt, square=square)
_PLAIN_FUNCTIONS = SimpleNamespace(**{name: function.fun
                                      for name, function in vars(_PRIMITIVES).items()})


def _primitives_for(*values):
    """`_PRIMITIVES` when any of ``values`` is traced, else `_PLAIN_FUNCTIONS`."""
    return _PRIMITIVES if any(isbox(value) for value in values) else _PLAIN_FUNCTIONS


def _grouped_shape(x_shape, groups):
    return (x_shape[0], groups, -1)


@primitive
def group_norm(x, groups, eps=1e-5):
    """Normalise ``x`` (N, C, ...) per sample over each group of C/groups channels.

    For 2-D input (N, F) the F features are split into ``groups`` groups (``groups=1`` is layer
    normalisation). Returns an array of ``x``'s shape with zero mean and unit variance per group.
    """
    _check_group_norm_args(x, groups, eps)
    xp = backend.xp
    grouped = xp.reshape(x, _grouped_shape(x.shape, groups))
    centered = grouped - xp.mean(grouped, axis=-1, keepdims=True)
    variance = xp.mean(xp.square(centered), axis=-1, keepdims=True)
    centered *= 1 / xp.sqrt(variance + eps)  # in place: centered is our own temporary
    return xp.reshape(centered, x.shape)


def _group_norm_vjp(result, x, groups, eps=1e-5):
    # With xhat = (x - mean) / std over a group of m entries, the chain rule through the mean
    # and the variance gives, per group (means over the group's m entries):
    #     grad_x = (grad_out - mean(grad_out) - xhat * mean(grad_out * xhat)) / std.
    # Written with minode's primitives (`_primitives_for`), so that it is differentiable again.
    p = _primitives_for(result, x)
    grouped_shape = _grouped_shape(x.shape, groups)
    xhat = p.reshape(result, grouped_shape)
    grouped = p.reshape(x, grouped_shape)
    centered = grouped - p.mean(grouped, axis=-1, keepdims=True)
    inverse_std = 1 / p.sqrt(p.mean(p.square(centered), axis=-1, keepdims=True) + eps)

    def vjp(grad_out):
        q = _primitives_for(grad_out, xhat, inverse_std)
        grad = q.reshape(grad_out, grouped_shape)
        grad_x = (grad - q.mean(grad, axis=-1, keepdims=True)
                  - xhat * q.mean(grad * xhat, axis=-1, keepdims=True)) * inverse_std
        return q.reshape(grad_x, x.shape)
    return vjp


defvjp(group_norm, _group_norm_vjp)


def _check_group_norm_args(x, groups, eps):
    if x.ndim < 2:
        raise ValueError(f"group_norm: x must have a batch and a channel axis, got shape {x.shape}")
    if int(groups) != groups or groups < 1 or x.shape[1] % groups:
        raise ValueError(f"group_norm: groups must be a positive integer dividing the "
                         f"{x.shape[1]} channels of x, got {groups!r}")
    if not eps > 0:
        raise ValueError(f"group_norm: eps must be positive, got {eps!r}")
