"""Benchmark: gradients of the spiral problem of torchdiffeq's ``examples/ode_demo.py``.

The workload, exactly as in that demo (but float64): the true trajectory starts at y0 = [[2, 0]]
and follows dy/dt = (y**3) @ A, A = [[-0.1, 2], [-2, -0.1]], sampled at t = linspace(0, 25, 1000).
The model dy/dt = Linear(50, 2)(tanh(Linear(2, 50)(y**3))), weights N(0, 0.1), biases 0, is
fitted to batches of 20 windows of 10 consecutive points with the L1 loss (mean |pred - true|),
RMSprop with learning rate 1e-3, dopri5 with rtol=1e-7, atol=1e-9. minode's batch_y0 has shape
(20, 2), torchdiffeq's the demo's (20, 1, 2): the same numbers, and the same RMS error norm.

For grad="adjoint" (with and without seminorm) and grad="backprop" this prints the seconds per
training iteration (median over 50 iterations), the forward and backward function evaluations
(NFE) per iteration and their ratio, and the loss after 300 iterations. When torch and
torchdiffeq are importable (they are not minode dependencies: run this from a separate venv,
see below), torchdiffeq's ``odeint_adjoint`` is trained on the same batches from the same
initial weights in the same process, and the time ratio is printed.

    python3 -m venv /work/bench-venv
    /work/bench-venv/bin/pip install torch==2.13.0 torchdiffeq && /work/bench-venv/bin/pip install -e .
    /work/bench-venv/bin/python benchmarks/spiral_grad.py            # 300 iterations per run
    /work/bench-venv/bin/python benchmarks/spiral_grad.py --iterations 60

Each run trains for ``--iterations`` iterations, the runs taking turns iteration by iteration;
"median of 50" is taken over the first 50 (the phase the NFE numbers in the project's issue
refer to) and over the last 50. ``--clock cpu`` times with the process's CPU time instead of
wall time (steadier on a machine shared with other jobs).
"""
import argparse
import os
import statistics
import time

# Single-threaded BLAS (and torch, below): the matrices are 20 x 50, where threads only add
# overhead, and idle spinning workers of one library would slow the other one's turns.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from autograd import value_and_grad

import minode
from minode import backend, ops

DATA_SIZE, BATCH_TIME, BATCH_SIZE, HIDDEN = 1000, 10, 20, 50
RTOL, ATOL, LEARNING_RATE = 1e-7, 1e-9, 1e-3


def true_data():
    """The demo's ground truth: y at 1000 times in [0, 25] from y0 = [[2, 0]]."""
    xp = backend.xp
    true_a = xp.asarray([[-0.1, 2.0], [-2.0, -0.1]])
    t = xp.linspace(0.0, 25.0, DATA_SIZE)
    y = minode.odeint(lambda y, t, p: ops.matmul(y ** 3, true_a), xp.asarray([[2.0, 0.0]]), t,
                      method="dopri5", rtol=RTOL, atol=ATOL)
    return t, y  # y: (1000, 1, 2)


def batches(t, true_y, iterations, seed=0):
    """The demo's ``get_batch``: 20 random windows of 10 points; y0 (20, 2), ys (10, 20, 2)."""
    import numpy  # index sampling only; the data stay on the active backend
    rng = numpy.random.default_rng(seed)
    for _ in range(iterations):
        s = rng.choice(DATA_SIZE - BATCH_TIME, BATCH_SIZE, replace=False)
        batch_y = backend.xp.stack([true_y[s + i, 0] for i in range(BATCH_TIME)])
        yield batch_y[0], t[:BATCH_TIME], batch_y


def initial_params(seed=0):
    """Linear(2, 50) and Linear(50, 2) weights N(0, 0.1), biases 0 (as ``x @ W + b``)."""
    import numpy
    rng = numpy.random.default_rng(seed)
    return {"W1": backend.asarray(rng.normal(0.0, 0.1, (2, HIDDEN))),
            "b1": backend.xp.zeros(HIDDEN),
            "W2": backend.asarray(rng.normal(0.0, 0.1, (HIDDEN, 2))),
            "b2": backend.xp.zeros(2)}


def dynamics(y, t, params):
    """The demo's ODEFunc: Linear-tanh-Linear applied to y**3."""
    hidden = ops.tanh(ops.matmul(y ** 3, params["W1"]) + params["b1"])
    return ops.matmul(hidden, params["W2"]) + params["b2"]


def make_rmsprop(lr=LEARNING_RATE):
    """RMSprop with torch.optim.RMSprop's defaults (alpha = 0.99, eps = 1e-8): minode.optim's,
    or a local one with the same ``init`` / ``update`` interface where it does not exist."""
    try:
        from minode.optim import RMSprop
    except ImportError:
        return _LocalRMSprop(lr)
    return RMSprop(lr=lr, decay=0.99, eps=1e-8)


class _LocalRMSprop:
    """s = decay s + (1 - decay) g^2;  p = p - lr g / (sqrt(s) + eps), leaf by leaf."""

    def __init__(self, lr, decay=0.99, eps=1e-8):
        self.lr, self.decay, self.eps = lr, decay, eps

    def init(self, params):
        return {k: backend.xp.zeros_like(v) for k, v in params.items()}

    def update(self, params, grads, state):
        new_params, new_state = {}, {}
        for k in params:
            s = new_state[k] = self.decay * state[k] + (1 - self.decay) * grads[k] ** 2
            new_params[k] = params[k] - self.lr * grads[k] / (backend.xp.sqrt(s) + self.eps)
        return new_params, new_state


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}


def train_minode(data, grad, seminorm=False, iterations=300, clock=time.perf_counter):
    """Train with minode, yielding (seconds, forward NFE, backward NFE, loss) per iteration."""
    params, optimizer = initial_params(), make_rmsprop()
    optimizer_state = optimizer.init(params)
    stats = minode.SolverStats()

    def loss(params, y0, t, batch_y):
        pred = minode.odeint(dynamics, y0, t, params, method="dopri5", rtol=RTOL, atol=ATOL,
                             grad=grad, seminorm=seminorm, stats=stats)
        return ops.mean(ops.absolute(pred - batch_y))

    loss_and_grad = value_and_grad(loss)
    for y0, t, batch_y in batches(*data, iterations):
        stats.reset()
        start = clock()
        value, grads = loss_and_grad(params, y0, t, batch_y)
        params, optimizer_state = optimizer.update(params, grads, optimizer_state)
        yield clock() - start, stats.forward.nfe, stats.backward.nfe, float(value)


def train_torchdiffeq(data, iterations=300, clock=time.perf_counter):
    """The demo itself with torchdiffeq's odeint_adjoint, float64, same batches and weights;
    yields (seconds, forward NFE, backward NFE, loss) per iteration."""
    import torch
    from torchdiffeq import odeint_adjoint

    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)  # as NumPy's BLAS above
    init = {k: backend.to_numpy(v) for k, v in initial_params().items()}

    class ODEFunc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(2, HIDDEN), torch.nn.Tanh(),
                                           torch.nn.Linear(HIDDEN, 2))
            with torch.no_grad():  # the same initial weights as minode's run
                self.net[0].weight.copy_(torch.from_numpy(init["W1"].T))
                self.net[0].bias.copy_(torch.from_numpy(init["b1"]))
                self.net[2].weight.copy_(torch.from_numpy(init["W2"].T))
                self.net[2].bias.copy_(torch.from_numpy(init["b2"]))
            self.nfe = 0

        def forward(self, t, y):
            self.nfe += 1
            return self.net(y ** 3)

    func = ODEFunc()
    optimizer = torch.optim.RMSprop(func.parameters(), lr=LEARNING_RATE)
    for y0, t, batch_y in batches(*data, iterations):
        # The demo's shapes: batch_y0 (20, 1, 2), batch_y (10, 20, 1, 2).
        y0 = torch.from_numpy(backend.to_numpy(y0)[:, None, :])
        t = torch.from_numpy(backend.to_numpy(t))
        batch_y = torch.from_numpy(backend.to_numpy(batch_y)[:, :, None, :])
        start = clock()
        optimizer.zero_grad()
        func.nfe = 0
        pred = odeint_adjoint(func, y0, t, rtol=RTOL, atol=ATOL, method="dopri5")
        loss = torch.mean(torch.abs(pred - batch_y))
        forward_nfe, func.nfe = func.nfe, 0
        loss.backward()
        optimizer.step()
        yield clock() - start, forward_nfe, func.nfe, float(loss.detach())


def summary(name, record, window=50):
    """One line per phase: median seconds per iteration, mean NFE, final loss."""
    lines = []
    n = len(record["seconds"])
    phases = [("first", slice(0, min(window, n)))]
    if n > window:
        phases.append(("last", slice(n - window, n)))
    for phase, part in phases:
        seconds = statistics.median(record["seconds"][part])
        forward = statistics.mean(record["forward"][part])
        backward = statistics.mean(record["backward"][part])
        lines.append(f"| {name} | {phase} {part.stop - part.start} | {seconds * 1e3:.1f} | "
                     f"{forward:.1f} | {backward:.1f} | {backward / forward:.2f} |")
    return lines, record["loss"][-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--clock", choices=sorted(CLOCK), default="wall")
    args = parser.parse_args()

    data = true_data()
    clock = CLOCK[args.clock]
    trainers = {name: train_minode(data, iterations=args.iterations, clock=clock, **kwargs)
                for name, kwargs in [("minode adjoint", dict(grad="adjoint")),
                                     ("minode adjoint + seminorm", dict(grad="adjoint",
                                                                        seminorm=True)),
                                     ("minode backprop", dict(grad="backprop"))]}
    torch_error = None
    if not args.skip_torch:
        try:
            import torch  # noqa: F401
            import torchdiffeq  # noqa: F401
        except ImportError as error:
            torch_error = str(error)
        else:
            trainers["torchdiffeq odeint_adjoint"] = train_torchdiffeq(data, args.iterations,
                                                                       clock)
    # The runs take turns, one iteration each, so that a change in the machine's load (other
    # processes) affects them all alike.
    runs = {name: {"seconds": [], "forward": [], "backward": [], "loss": []} for name in trainers}
    for _ in range(args.iterations):
        for name, trainer in trainers.items():
            for key, value in zip(("seconds", "forward", "backward", "loss"), next(trainer)):
                runs[name][key].append(value)

    print(f"spiral (torchdiffeq ode_demo), dopri5 rtol={RTOL:g} atol={ATOL:g}, float64, "
          f"batch {BATCH_SIZE} x {BATCH_TIME} times, {args.iterations} iterations per run, "
          f"RMSprop from {type(make_rmsprop()).__module__}, {args.clock} clock\n")
    print("| run | iterations | ms / iteration (median) | forward NFE | backward NFE | "
          "backward / forward |")
    print("|---|---|---:|---:|---:|---:|")
    losses = {}
    for name, record in runs.items():
        lines, losses[name] = summary(name, record)
        print("\n".join(lines))
    print()
    for name, value in losses.items():
        print(f"loss after {args.iterations} iterations, {name}: {value:.6f}")
    if "torchdiffeq odeint_adjoint" in runs:
        print()
        torch_record = runs["torchdiffeq odeint_adjoint"]
        for name in ("minode adjoint", "minode adjoint + seminorm"):
            for phase, part in (("first 50", slice(0, 50)), ("last 50", slice(-50, None))):
                ratio = (statistics.median(runs[name]["seconds"][part])
                         / statistics.median(torch_record["seconds"][part]))
                print(f"time ratio {name} / torchdiffeq odeint_adjoint ({phase}): {ratio:.2f}")
    elif torch_error is not None:
        print(f"\ntorchdiffeq not importable ({torch_error}); run from a venv that has it")


if __name__ == "__main__":
    main()
