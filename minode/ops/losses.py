"""Losses and log-densities, written as compositions of minode's primitives.

Each is a few primitives long, so its gradient comes from theirs; the docstrings give the formula.
"""
import math

from minode import backend
from minode.ops.broadcasting import shape_of
from minode.ops.elementwise import (absolute, add, divide, exp, multiply, negative, square,
                                    subtract)
from minode.ops.reductions import logsumexp, mean, sum

_LOG_2PI = math.log(2 * math.pi)


def log_softmax(logits, axis=-1):
    """``logits - logsumexp(logits)`` along ``axis``: log-probabilities that sum to one there."""
    return subtract(logits, logsumexp(logits, axis=axis, keepdims=True))


def cross_entropy(logits, labels):
    """Mean over the batch of ``-log softmax(logits)[label]``.

    ``logits``: (B, K) unnormalised class scores; ``labels``: (B,) integers in [0, K). The true
    class is picked with a one-hot mask (a multiply and a sum), so the gradient w.r.t. the logits
    is ``(softmax(logits) - one_hot(labels)) / B``.
    """
    xp = backend.xp
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (batch, classes), got shape "
                         f"{logits.shape}")
    labels = backend.asarray(labels)
    batch, classes = logits.shape
    if labels.shape != (batch,) or labels.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy: labels must be {batch} integers (one per row of "
                         f"logits), got shape {labels.shape} and dtype {labels.dtype}")
    if batch and not 0 <= int(labels.min()) <= int(labels.max()) < classes:
        raise ValueError(f"cross_entropy: labels must lie in [0, {classes}), got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
    one_hot = (labels[:, None] == xp.arange(classes)).astype(logits.dtype)
    return divide(negative(sum(multiply(log_softmax(logits), one_hot))), batch)


def mean_squared_error(pred, target):
    """``mean((pred - target)**2)`` over all entries; ``pred`` and ``target`` have one shape."""
    _check_same_shape(pred, target, "mean_squared_error")
    return mean(square(subtract(pred, target)))


def mean_absolute_error(pred, target):
    """``mean(|pred - target|)`` over all entries (the L1 loss); one shape for both."""
    _check_same_shape(pred, target, "mean_absolute_error")
    return mean(absolute(subtract(pred, target)))


def _check_same_shape(pred, target, function_name):
    if shape_of(pred) != shape_of(target):
        raise ValueError(f"{function_name}: target has shape {shape_of(target)} but pred has "
                         f"{shape_of(pred)}")


def gaussian_log_likelihood(x, mean, log_var):
    """Elementwise ``log N(x; mean, exp(log_var))``.

    ``= -(log(2 pi) + log_var + (x - mean)**2 * exp(-log_var)) / 2``. ``mean`` and ``log_var``
    may be arrays that broadcast to ``x``'s shape, or numbers (a fixed noise variance); the
    result has ``x``'s shape. Sum it over the data axes for a log-likelihood.
    """
    _check_broadcasts_to("mean", mean, shape_of(x), "gaussian_log_likelihood")
    _check_broadcasts_to("log_var", log_var, shape_of(x), "gaussian_log_likelihood")
    if not hasattr(log_var, "shape"):
        log_var = backend.asarray(log_var, dtype=x.dtype)
    scaled_squared_error = multiply(square(subtract(x, mean)), exp(negative(log_var)))
    return multiply(-0.5, add(add(scaled_squared_error, log_var), _LOG_2PI))


def kl_diag_gaussian_to_standard(mean, log_var):
    """KL( N(mean, diag(exp(log_var))) || N(0, I) ), summed over the last axis.

    ``= sum(exp(log_var) + mean**2 - 1 - log_var) / 2``: the regulariser of a variational
    autoencoder (Kingma & Welling 2014, appendix B) and of the Latent ODE.
    """
    if shape_of(mean) != shape_of(log_var):
        raise ValueError(f"kl_diag_gaussian_to_standard: log_var has shape {shape_of(log_var)} "
                         f"but mean has {shape_of(mean)}")
    terms = subtract(add(exp(log_var), square(mean)), add(log_var, 1.0))
    return multiply(0.5, sum(terms, axis=-1))


def _check_broadcasts_to(name, value, shape, function_name):
    value_shape = shape_of(value)
    compatible = len(value_shape) <= len(shape) and all(
        size in (1, target) for size, target in zip(value_shape[::-1], shape[::-1]))
    if not compatible:
        raise ValueError(f"{function_name}: {name} has shape {value_shape}, which does not "
                         f"broadcast to x's shape {shape}")
