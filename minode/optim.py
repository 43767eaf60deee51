"""Optimizers on parameter pytrees and learning-rate schedules.

An optimizer holds only its hyperparameters; its state is a plain dict that the caller keeps:

    opt = Adam(lr=1e-3)                      # or lr=step_decay(1e-3, 0.1, every=1000)
    state = opt.init(params)
    for batch in batches:
        grads = autograd.grad(loss)(params, batch)
        params, state = opt.update(params, grads, state)

Every update is written leaf by leaf with `tree_map` and array arithmetic, so it runs on NumPy
and CuPy alike; nothing here is differentiated.
"""
from minode import backend
from minode.checks import check_fraction, check_positive, check_positive_int
from minode.tree import check_same_tree, tree_map

__all__ = ["constant", "step_decay", "SGD", "RMSprop", "Adam"]


# ----------------------------------------------------------------------------- Schedules

def constant(lr):
    """The schedule ``step -> lr``."""
    check_positive("lr", lr)
    return lambda step: lr


def step_decay(lr, factor, every):
    """The schedule ``step -> lr * factor ** (step // every)``: multiply by ``factor`` every
    ``every`` steps (steps count from 0, the first update)."""
    check_positive("lr", lr)
    check_positive("factor", factor)
    check_positive_int("every", every)
    return lambda step: lr * factor ** (step // every)


# ----------------------------------------------------------------------------- Optimizers

class Optimizer:
    """Shared by the optimizers: the learning-rate schedule and the step counter.

    ``lr`` is a positive number or a schedule (a function of the step index, e.g. `step_decay`).
    Subclasses name their per-parameter buffers in ``buffers`` and implement ``_update``.
    """

    buffers = ()

    def __init__(self, lr):
        self.schedule = lr if callable(lr) else constant(lr)

    def init(self, params):
        """The state before the first update: step 0 and zero buffers shaped like ``params``."""
        return {"step": 0, **{name: tree_map(backend.xp.zeros_like, params)
                              for name in self.buffers}}

    def update(self, params, grads, state):
        """One step: returns ``(new_params, new_state)``; the inputs are left unchanged.

        ``grads`` and each buffer of ``state`` must have the tree structure and leaf shapes of
        ``params``, else ``ValueError`` names the first place they differ (arithmetic would
        broadcast a mismatched leaf without a word).
        """
        missing = [name for name in ("step",) + self.buffers if name not in state]
        if missing:
            raise ValueError(f"state is missing {missing}: create it with {type(self).__name__}"
                             f"(...).init(params)")
        check_same_tree(grads, params, "grads", names=("grads", "params"), dtypes=False)
        for name in self.buffers:
            where = f"state[{name!r}]"
            check_same_tree(state[name], params, where, names=(where, "params"), dtypes=False)
        step = state["step"]
        params, buffers = self._update(params, grads, state, self.schedule(step), step + 1)
        return params, {"step": step + 1, **buffers}

    def _update(self, params, grads, state, lr, step):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, as in PyTorch:

        v <- momentum * v + g,    p <- p - lr * v.

    ``momentum=0`` is plain gradient descent.
    """

    buffers = ("velocity",)

    def __init__(self, lr, momentum=0.9):
        super().__init__(lr)
        check_fraction("momentum", momentum)
        self.momentum = momentum

    def _update(self, params, grads, state, lr, step):
        velocity = tree_map(lambda v, g: self.momentum * v + g, state["velocity"], grads)
        params = tree_map(lambda p, v: p - lr * v, params, velocity)
        return params, {"velocity": velocity}


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012): divide by a running root mean square of the gradient.

        s <- decay * s + (1 - decay) * g**2,    p <- p - lr * g / (sqrt(s) + eps).
    """

    buffers = ("mean_square",)

    def __init__(self, lr, decay=0.99, eps=1e-8):
        super().__init__(lr)
        check_fraction("decay", decay)
        check_positive("eps", eps)
        self.decay, self.eps = decay, eps

    def _update(self, params, grads, state, lr, step):
        decay, sqrt = self.decay, backend.xp.sqrt
        mean_square = tree_map(lambda s, g: decay * s + (1 - decay) * g * g,
                               state["mean_square"], grads)
        params = tree_map(lambda p, g, s: p - lr * g / (sqrt(s) + self.eps),
                          params, grads, mean_square)
        return params, {"mean_square": mean_square}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with bias-corrected moment estimates:

        m <- b1 m + (1 - b1) g,    v <- b2 v + (1 - b2) g**2,
        p <- p - lr * (m / (1 - b1**k)) / (sqrt(v / (1 - b2**k)) + eps)     at step k = 1, 2, ...
    """

    buffers = ("m", "v")

    def __init__(self, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__(lr)
        check_fraction("b1", b1)
        check_fraction("b2", b2)
        check_positive("eps", eps)
        self.b1, self.b2, self.eps = b1, b2, eps

    def _update(self, params, grads, state, lr, step):
        b1, b2, sqrt = self.b1, self.b2, backend.xp.sqrt
        m = tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], grads)
        v = tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state["v"], grads)
        m_scale, v_scale = 1 / (1 - b1 ** step), 1 / (1 - b2 ** step)
        params = tree_map(lambda p, m, v: p - lr * (m * m_scale) / (sqrt(v * v_scale) + self.eps),
                          params, m, v)
        return params, {"m": m, "v": v}
