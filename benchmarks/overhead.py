"""Benchmark: where one adjoint gradient's time goes, without reaching for a profiler.

For each workload, one gradient of a loss through ``odeint(..., grad="adjoint")`` runs under
cProfile, and this prints

* primitive calls per function evaluation: every call of an autograd primitive (traced or
  not), split into the forward solve's evaluations and the backward solve's, and the traced
  nodes per backward evaluation (each is a VJP to run in that evaluation's backward pass); a
  VJP that calls the plain functions of primitives, as those of `minode/ops/planar_units.py`
  do when nothing is traced, makes calls that are not counted here;
* the time split by who spends it: autograd (tracing, boxes, its backward pass), NumPy
  (Python wrappers and C ufuncs), minode's primitives (`minode/ops`), the rest of minode
  (solver loop, adjoint, checks), and everything else (the workload's own Python).

Workloads: ``spiral`` is `benchmarks/spiral_grad.py`'s iteration (MLP 2-50-2 on y**3, batch 20,
10 times, dopri5 at 1e-7 / 1e-9); ``planar_cnf`` the CNF tutorial's likelihood step (planar CNF
with M = 64 units, 256 samples, closed-form trace, dopri5 at 1e-5, t in [0, 10]); ``mlp_batch``
a wider field (MLP 16-64-16 with `minode.nn`, batch 128). cProfile itself slows Python calls
down, so the shares are a picture of the overhead, not timings (timings: `spiral_grad.py`).

    python benchmarks/overhead.py
"""
import cProfile
import os
import pstats

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy  # noqa: E402  (random inputs only)
from autograd import grad  # noqa: E402

import minode  # noqa: E402
from minode import backend, cnf, nn, ops, planar  # noqa: E402

CATEGORIES = ("autograd", "numpy", "minode.ops", "minode (other)", "other")


def spiral_workload():
    rng = numpy.random.default_rng(0)
    params = {"W1": rng.normal(0, 0.1, (2, 50)), "b1": numpy.zeros(50),
              "W2": rng.normal(0, 0.1, (50, 2)), "b2": numpy.zeros(2)}

    def func(y, t, p):
        return ops.matmul(ops.tanh(ops.matmul(y ** 3, p["W1"]) + p["b1"]), p["W2"]) + p["b2"]
    y0, t = rng.normal(size=(20, 2)), numpy.linspace(0.0, 0.24, 10)
    return func, y0, t, params, dict(rtol=1e-7, atol=1e-9)


def planar_cnf_workload():
    rng = numpy.random.default_rng(0)
    params = planar.init_planar_cnf(rng, dim=2, units=64)
    y0 = numpy.concatenate([rng.normal(size=(256, 2)), numpy.zeros((256, 1))], axis=1)

    # d/dt [z, log_det] exactly as cnf.flow solves it with the closed-form trace
    func = cnf._augmented_field(planar.planar_cnf_with_trace, "closed_form", None, 2)
    return func, y0, numpy.array([0.0, 10.0]), params, dict(rtol=1e-5, atol=1e-5)


def mlp_batch_workload():
    rng = numpy.random.default_rng(0)
    params = nn.init_mlp(rng, [16, 64, 16])
    return (lambda y, t, p: nn.mlp(p, y)), rng.normal(size=(128, 16)), \
        numpy.array([0.0, 1.0]), params, dict(rtol=1e-6, atol=1e-8)


WORKLOADS = {"spiral": spiral_workload, "planar_cnf": planar_cnf_workload,
             "mlp_batch": mlp_batch_workload}


def profile_gradient(workload):
    """(pstats.Stats, SolverStats) of one adjoint gradient of sum(ys^2) w.r.t. the params."""
    func, y0, t, params, tolerances = workload()
    y0, t = backend.asarray(y0), backend.asarray(t)
    stats = minode.SolverStats()

    def loss(p):
        return ops.sum(minode.odeint(func, y0, t, p, stats=stats, **tolerances)[-1] ** 2)
    gradient = grad(loss)
    gradient(params)  # warm up: imports, caches
    stats.reset()
    profiler = cProfile.Profile()
    profiler.runcall(gradient, params)
    return pstats.Stats(profiler), stats


def category(filename):
    """Who a profiled function belongs to, by its file."""
    if "autograd" in filename or filename.endswith(os.path.join("minode", "tracing.py")):
        return "autograd"  # minode/tracing.py is autograd's backward pass, per root
    if "numpy" in filename or filename == "~":  # "~": C functions, NumPy's ufuncs mostly
        return "numpy"
    if os.sep + os.path.join("minode", "ops") in filename:
        return "minode.ops"
    if os.sep + "minode" + os.sep in filename:
        return "minode (other)"
    return "other"


def summarise(profile, stats):
    """Primitive calls and traced nodes per evaluation, and the time shares by category."""
    seconds = dict.fromkeys(CATEGORIES, 0.0)
    primitive_calls = traced_nodes = 0
    for (filename, _, name), (_, calls, own_time, _, _) in profile.stats.items():
        seconds[category(filename)] += own_time
        if filename.endswith(os.path.join("autograd", "tracer.py")) and name == "f_wrapped":
            primitive_calls += calls
        if filename.endswith(os.path.join("autograd", "core.py")) and name == "__init__":
            traced_nodes += calls
    evaluations = stats.forward.nfe + stats.backward.nfe
    total = sum(seconds.values())
    return {"evaluations": f"{stats.forward.nfe} + {stats.backward.nfe}",
            "primitive calls / evaluation": f"{primitive_calls / evaluations:.1f}",
            "traced nodes / backward evaluation": f"{traced_nodes / stats.backward.nfe:.1f}",
            **{name: f"{100 * seconds[name] / total:.0f}%" for name in CATEGORIES}}


def main():
    rows = {name: summarise(*profile_gradient(workload))
            for name, workload in WORKLOADS.items()}
    columns = list(next(iter(rows.values())))
    print("One adjoint gradient per workload under cProfile (evaluations: forward + backward; "
          "time shares by the file of each function's own time)\n")
    print("| workload | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(row[column] for column in columns) + " |")


if __name__ == "__main__":
    main()
