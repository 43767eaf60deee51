"""Benchmark: peak memory of one gradient, grad="adjoint" vs grad="backprop", 10 vs 1000 steps.

The claim of Chen et al. 2018 (sec. 2): the adjoint method computes gradients "with constant
memory cost" in the number of solver steps, because the forward solve keeps only the outputs
and the backward solve recomputes z(t) instead of storing it. Backprop through the solver
("RK-Net") keeps every intermediate of every step for autograd's backward pass, so its memory
grows linearly with the steps.

One gradient of sum(z(1)^2) w.r.t. (y0, params) for a tanh MLP vector field (batch 16, state 4,
hidden 16), classic rk4 with 10 or 1000 steps on [0, 1]. Memory is measured with tracemalloc,
which sees NumPy's array buffers: the peak above what was allocated before the call.

    python benchmarks/adjoint_memory.py
"""
import tracemalloc

from autograd import grad

import minode
from minode import backend, ops

BATCH, DIM, HIDDEN = 16, 4, 16


def problem(seed=0):
    """The initial state, the MLP's parameters and its vector field."""
    import numpy  # random initial values only
    rng = numpy.random.default_rng(seed)
    y0 = backend.asarray(rng.normal(size=(BATCH, DIM)))
    params = {"W1": backend.asarray(rng.normal(0, 0.5, (DIM, HIDDEN))),
              "b1": backend.xp.zeros(HIDDEN),
              "W2": backend.asarray(rng.normal(0, 0.5, (HIDDEN, DIM))),
              "b2": backend.xp.zeros(DIM)}

    def func(y, t, p):
        return ops.matmul(ops.tanh(ops.matmul(y, p["W1"]) + p["b1"]), p["W2"]) + p["b2"]
    return func, y0, params


def peak_memories(grad_mode, step_counts=(10, 1000)):
    """`peak_memory` for each of ``step_counts``, after one unmeasured gradient with the most
    steps: CPython keeps freed small objects (tuples, frames) in free lists that tracemalloc
    still counts as allocated, and the first long run fills them once and for all; measured
    after it, a peak is the memory that the gradient itself holds."""
    peak_memory(grad_mode, max(step_counts))
    return [peak_memory(grad_mode, n_steps) for n_steps in step_counts]


def peak_memory(grad_mode, n_steps):
    """Peak bytes allocated while computing one gradient with ``n_steps`` rk4 steps."""
    func, y0, params = problem()
    t = backend.xp.asarray([0.0, 1.0])

    def loss(y0, params):
        ys = minode.odeint(func, y0, t, params, method="rk4", step_size=1.0 / n_steps,
                           grad=grad_mode)
        return ops.sum(ys[-1] ** 2)

    gradient = grad(loss, (0, 1))
    tracing_before = tracemalloc.is_tracing()
    if not tracing_before:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        gradient(y0, params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not tracing_before:
            tracemalloc.stop()
    return peak - baseline


def main():
    print(f"peak memory of one gradient (tracemalloc), tanh MLP batch {BATCH} x state {DIM} x "
          f"hidden {HIDDEN}, rk4 on [0, 1]\n")
    print("| grad | 10 steps | 1000 steps | ratio |")
    print("|---|---:|---:|---:|")
    for grad_mode in ("adjoint", "backprop"):
        small, large = peak_memories(grad_mode)
        print(f"| {grad_mode} | {small / 1e6:.3f} MB | {large / 1e6:.3f} MB | "
              f"{large / small:.1f}x |")


if __name__ == "__main__":
    main()
