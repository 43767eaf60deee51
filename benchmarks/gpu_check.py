"""Check minode on CuPy: every primitive's gradients, the conv ODE gradient, the conv block's speed.

    python benchmarks/gpu_check.py [--repeats 5]

1. Each primitive test case (tests/op_cases.py) runs on CuPy; its output, gradients and second
   derivatives (Hessian-vector products, which differentiate every VJP) must equal the NumPy
   backend's (which tests/test_ops.py checks against autograd.numpy and finite differences),
   and its gradients must pass central finite differences on the GPU (float64).
2. The small conv ODE of tests/test_conv_ode.py: adjoint gradients w.r.t. y0 and the parameters
   against central differences, on the GPU.
3. The paper's MNIST ODE block (benchmarks/conv_block.py) timed on the GPU.

Where CuPy or a GPU is missing, it says so and exits 0. Exits 1 when a check fails.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(os.path.dirname(HERE), "tests"), HERE]

from minode import backend, ops  # noqa: E402
from minode.gradcheck import check_grads  # noqa: E402


def gpu_unavailable_reason():
    """None when CuPy can use a GPU here, else why not."""
    try:
        import cupy
    except ImportError as error:
        return f"CuPy is not installed ({error}); pip install -e .[gpu] on a CUDA machine"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises its own CUDA error types
        return f"CuPy cannot reach a GPU: {error}"
    return None if count else "CUDA reports no GPU"


def check_primitives(backend_name):
    """Every primitive case on ``backend_name`` against NumPy and finite differences."""
    from op_cases import (CASES, cotangent_for, loss_of, max_relative_difference, result_on,
                          second_order_on)
    failures = 0
    print(f"| primitive case | max rel. diff vs NumPy (outputs, 1st and 2nd derivatives) | "
          f"finite differences on {backend_name} |")
    print("|---|---:|---|")
    for c in CASES:
        expected_output, expected_grads = result_on("numpy", c)
        output, grads = result_on(backend_name, c)
        difference = max(
            max_relative_difference([output, *grads], [expected_output, *expected_grads]),
            max_relative_difference(second_order_on(backend_name, c), second_order_on("numpy", c)))
        previous = backend.set_backend(backend_name)
        try:
            args = [backend.asarray(x) if hasattr(x, "dtype") else x for x in c.inputs]
            cotangent = backend.asarray(cotangent_for(output.shape))
            check_grads(loss_of(c.function, ops, args, c.argnums, cotangent),
                        *[args[i] for i in c.argnums])
            fd_result = "pass"
        except AssertionError as error:
            fd_result = f"FAIL: {error}"
        finally:
            backend.set_backend(previous)
        ok = difference < 1e-9 and fd_result == "pass"
        failures += not ok
        print(f"| {c.name} | {difference:.1e}{'' if ok else ' FAIL'} | {fd_result} |")
    return failures


def check_conv_ode(backend_name):
    """The conv ODE adjoint gradient against finite differences on ``backend_name``."""
    from test_conv_ode import loss, make_problem
    from minode.tree import tree_map
    previous = backend.set_backend(backend_name)
    try:
        y0, params = make_problem()
        y0, params = backend.asarray(y0), tree_map(backend.asarray, params)
        start = time.perf_counter()
        check_grads(loss, y0, params, rtol=1e-5, atol=1e-7)
        print(f"conv ODE adjoint gradient vs finite differences on {backend_name}: pass "
              f"({time.perf_counter() - start:.1f} s)")
        return 0
    except AssertionError as error:
        print(f"conv ODE adjoint gradient vs finite differences on {backend_name}: FAIL: {error}")
        return 1
    finally:
        backend.set_backend(previous)


def time_conv_block(backend_name, repeats):
    import conv_block
    previous = backend.set_backend(backend_name)
    try:
        synchronize = backend.xp.cuda.Device().synchronize if backend_name == "cupy" else None
        print(f"\nconv ODE block on {backend_name}, median of {repeats} runs, wall ms")
        print("| solver | forward | fwd + adjoint bwd | fwd + backprop | NFE fwd / adj bwd |")
        print("|---|---:|---:|---:|---|")
        for setting in conv_block.SETTINGS:
            result = conv_block.time_minode(setting, repeats, synchronize=synchronize or (
                lambda: None))
            print(f"| {setting} | {result['forward']:.1f} | {result['adjoint']:.1f} | "
                  f"{result['backprop']:.1f} | {result['nfe'][0]} / {result['nfe'][1]} |")
    finally:
        backend.set_backend(previous)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="cupy", help=argparse.SUPPRESS)  # for dry runs
    args = parser.parse_args()
    if args.backend == "cupy":
        reason = gpu_unavailable_reason()
        if reason is not None:
            print(f"gpu_check: skipped, {reason}.")
            return 0
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        print(f"GPU: {props['name'].decode()}, CuPy {cupy.__version__}")
    failures = check_primitives(args.backend) + check_conv_ode(args.backend)
    time_conv_block(args.backend, args.repeats)
    print(f"\n{failures} check(s) failed" if failures else "\nall checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
