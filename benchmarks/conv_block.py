"""Time the paper's MNIST ODE block in minode, and in torchdiffeq when it is importable.

The block of torchdiffeq's ``examples/odenet_mnist.py``: the state is (32, 64, 6, 6) float32
(28 -> conv3 -> 26 -> conv4/s2 -> 13 -> conv4/s2 -> 6) and the dynamics are

    GroupNorm(32) -> ReLU -> conv3x3(65 -> 64, time channel, bias) -> GroupNorm(32) -> ReLU
    -> conv3x3(65 -> 64) -> GroupNorm(32),

conv weights and biases U(-1/sqrt(585), 1/sqrt(585)), integrated over t in [0, 1] with dopri5
(rtol = atol = 1e-3) and with rk4 (10 steps of 0.1). Both libraries get the same numbers.

    python benchmarks/conv_block.py [--repeats 5] [--threads N] [--clock wall|cpu]

For the comparison run it with an interpreter that has torch and torchdiffeq besides minode
(they are not minode dependencies), e.g. a separate venv with ``pip install torch torchdiffeq``
and ``pip install -e .``. Times are the median of ``--repeats`` runs after one warm-up, in
milliseconds; "forward" is the solve alone, "adjoint" the solve plus the adjoint backward pass,
"backprop" the solve plus backpropagation through the solver's steps. ``--threads N`` limits
OpenBLAS, OpenMP and MKL (NumPy's and torch's BLAS) to N threads; ``--clock cpu`` reports the
process's CPU time instead of wall time (steadier on a machine shared with other jobs).

glibc hands freed blocks of more than a few hundred kilobytes straight back to the kernel, so
every fresh (585, 1152) im2col buffer is paid for again in page faults. The script therefore
tells malloc to keep freed memory (`keep_freed_memory`, both libraries run in this process and
both benefit); ``--default-malloc`` skips that.

NumPy's OpenBLAS picks its kernels by CPU type, and ``OPENBLAS_CORETYPE`` overrides that: the
machine this was written on sets ``OPENBLAS_CORETYPE=Haswell`` (AVX2 kernels) in its environment,
and the conv matrix products run about 1.7x faster alone with ``OPENBLAS_CORETYPE=SkylakeX``
(AVX-512, which torch's oneDNN uses anyway). The header line prints the setting in force.
"""
import argparse
import ctypes
import ctypes.util
import os
import statistics
import sys
import time

if "--threads" in sys.argv:  # before NumPy and torch load their thread pools
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_variable] = sys.argv[sys.argv.index("--threads") + 1]

import numpy  # noqa: E402
from autograd import grad  # noqa: E402

from minode import SolverStats, backend, nn, odeint, ops  # noqa: E402

BATCH, CHANNELS, SIZE = 32, 64, 6
SETTINGS = {"dopri5": dict(method="dopri5", rtol=1e-3, atol=1e-3),
            "rk4": dict(method="rk4", step_size=0.1)}


def make_inputs(seed=0, dtype="float32"):
    """The initial state, the parameters and the output cotangent as NumPy arrays."""
    rng = numpy.random.default_rng(seed)
    params = nn.init_conv_ode_func(rng, CHANNELS, dtype)  # U(-1/sqrt(585), 1/sqrt(585)) convs
    params = nn.tree_map(lambda leaf: numpy.asarray(backend.to_numpy(leaf)), params)
    y0 = rng.standard_normal((BATCH, CHANNELS, SIZE, SIZE)).astype(dtype)
    cotangent = rng.standard_normal(y0.shape).astype(dtype)
    return y0, params, cotangent


def keep_freed_memory():
    """Ask glibc's malloc to reuse freed memory instead of returning it to the kernel.

    Returns False where that is not possible (not glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # from <malloc.h>
    return bool(mallopt(m_trim_threshold, 1 << 30) and mallopt(m_top_pad, 64 << 20)
                and mallopt(m_mmap_threshold, 32 << 20))


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCK["wall"]


def median_ms(function, repeats):
    """Median time of ``function()`` in milliseconds by ``clock``, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = clock()
        function()
        times.append(1e3 * (clock() - start))
    return statistics.median(times)


def time_minode(setting, repeats, dtype="float32", synchronize=lambda: None):
    """{"forward", "adjoint", "backprop": ms, "nfe": (forward, backward)} on the active backend."""
    y0, params, cotangent = (nn.tree_map(backend.asarray, value) for value in make_inputs(
        dtype=dtype))
    t = backend.asarray(numpy.array([0.0, 1.0], dtype=dtype))
    stats = SolverStats()

    def solve(y0, params, grad_mode):
        ys = odeint(nn.conv_ode_func, y0, t, params, grad=grad_mode, stats=stats,
                    **SETTINGS[setting])
        return ops.sum(ops.multiply(ops.getitem(ys, -1), cotangent))

    def run(grad_mode):
        def timed():
            if grad_mode is None:
                solve(y0, params, "adjoint")
            else:
                grad(solve, (0, 1))(y0, params, grad_mode)
            synchronize()
        return timed

    results = {"forward": median_ms(run(None), repeats)}
    stats.reset()
    results["adjoint"] = median_ms(run("adjoint"), repeats)
    results["nfe"] = (stats.forward.nfe // (repeats + 1), stats.backward.nfe // (repeats + 1))
    results["backprop"] = median_ms(run("backprop"), repeats)
    return results


def time_torchdiffeq(setting, repeats):
    """The same measurements with torch + torchdiffeq, or None when they are not importable."""
    try:
        import torch
        import torchdiffeq
    except ImportError:
        return None
    y0, params, cotangent = make_inputs()
    func = _torch_ode_func(torch, params)
    y0, cotangent = torch.from_numpy(y0), torch.from_numpy(cotangent)
    t = torch.tensor([0.0, 1.0])
    options = ({"method": "dopri5", "rtol": 1e-3, "atol": 1e-3} if setting == "dopri5" else
               {"method": "rk4", "options": {"step_size": 0.1}})

    def run(solver):
        def timed():
            if solver is None:
                with torch.no_grad():
                    torchdiffeq.odeint(func, y0, t, **options)
                return
            y = y0.clone().requires_grad_(True)
            func.zero_grad()
            (solver(func, y, t, **options)[-1] * cotangent).sum().backward()
        return timed

    func.nfe = 0
    results = {"forward": median_ms(run(None), repeats)}
    forward_nfe, func.nfe = func.nfe // (repeats + 1), 0
    results["adjoint"] = median_ms(run(torchdiffeq.odeint_adjoint), repeats)
    results["nfe"] = (forward_nfe, func.nfe // (repeats + 1) - forward_nfe)
    results["backprop"] = median_ms(run(torchdiffeq.odeint), repeats)
    return results


def _torch_ode_func(torch, params):
    """torchdiffeq's ODEfunc with our parameters copied in."""
    nn_ = torch.nn

    class ConcatConv2d(nn_.Module):
        def __init__(self, conv_params):
            super().__init__()
            self.layer = nn_.Conv2d(CHANNELS + 1, CHANNELS, 3, padding=1)
            self.layer.weight.data = torch.from_numpy(conv_params["w"].copy())
            self.layer.bias.data = torch.from_numpy(conv_params["b"].copy())

        def forward(self, t, x):
            tt = torch.ones_like(x[:, :1, :, :]) * t
            return self.layer(torch.cat([tt, x], 1))

    class ODEfunc(nn_.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.norm2, self.norm3 = (nn_.GroupNorm(32, CHANNELS) for _ in range(3))
            self.conv1, self.conv2 = ConcatConv2d(params["conv1"]), ConcatConv2d(params["conv2"])
            self.nfe = 0

        def forward(self, t, x):
            self.nfe += 1
            out = self.conv1(t, torch.relu(self.norm1(x)))
            out = self.conv2(t, torch.relu(self.norm2(out)))
            return self.norm3(out)

    return ODEfunc()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/OpenMP threads (default: the libraries' own choice)")
    parser.add_argument("--clock", choices=sorted(CLOCK), default="wall")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc settings alone")
    args = parser.parse_args()
    global clock
    clock = CLOCK[args.clock]
    tuned = not args.default_malloc and keep_freed_memory()
    coretype = os.environ.get("OPENBLAS_CORETYPE", "(detected)")
    print(f"conv ODE block, state ({BATCH}, {CHANNELS}, {SIZE}, {SIZE}) float32, minode backend "
          f"{backend.name}, threads {args.threads or 'default'}, OPENBLAS_CORETYPE {coretype}, "
          f"malloc keeps freed memory: {tuned}; median of {args.repeats} runs, {args.clock} "
          "time in ms")
    print("| solver | library | forward | fwd + adjoint bwd | fwd + backprop | NFE fwd / adj bwd |"
          "\n|---|---|---:|---:|---:|---|")
    comparisons = []
    for setting in SETTINGS:
        ours = time_minode(setting, args.repeats)
        print(f"| {setting} | minode | {ours['forward']:.1f} | {ours['adjoint']:.1f} | "
              f"{ours['backprop']:.1f} | {ours['nfe'][0]} / {ours['nfe'][1]} |", flush=True)
        theirs = time_torchdiffeq(setting, args.repeats)
        if theirs is None:
            continue
        print(f"| {setting} | torchdiffeq | {theirs['forward']:.1f} | {theirs['adjoint']:.1f} | "
              f"{theirs['backprop']:.1f} | {theirs['nfe'][0]} / {theirs['nfe'][1]} |")
        ratios = [ours[key] / theirs[key] for key in ("forward", "adjoint", "backprop")]
        comparisons.append(f"| {setting} | minode / torchdiffeq | "
                           + " | ".join(f"{r:.2f}x" for r in ratios) + " | |")
    if comparisons:
        print("\n".join(comparisons))
    else:
        print("(torch/torchdiffeq not importable here: no comparison)")


if __name__ == "__main__":
    main()
