"""A vector-Jacobian product with one trace root per argument, and which traces a value is
in: the one place that uses autograd's internals (its trace stack, nodes and boxes) directly.

``autograd.make_vjp(f, argnum=(0, 1, 2))`` traces f once with its arguments packed in one tuple:
the tuple is the root, and every argument is read out of it by a traced indexing node, whose
VJP builds the tuple's gradient back. The adjoint's backward pass (`minode.adjoint`) takes such
a VJP at every evaluation, with the state, the time and every parameter array as arguments, so
those packing nodes and the slicing of a flat parameter vector into arrays would be a large
share of the work (each traced primitive costs a few microseconds of Python).
`vjp_per_argument` gives every argument a root of its own instead: nothing is packed, and the
backward pass collects each root's gradient where it arrives. It is the same reverse pass as
autograd's (`autograd.core.backward_pass`, which returns one root's gradient only), so it is
traced like any other when autograd differentiates it again (the adjoint's higher derivatives).
"""
from autograd.core import VJPNode, add_outgrads
from autograd.tracer import getval, isbox, new_box, toposort, trace_stack

from minode import backend

__all__ = ["vjp_per_argument", "traced_beyond"]


def vjp_per_argument(fun, args):
    """``(vjp, value)`` of ``fun(*args)``: ``vjp(grad_out)`` is the list of the gradients w.r.t.
    each argument, zeros (of the argument's shape and dtype) where ``fun`` does not depend on
    it; ``value`` is ``fun(*args)``."""
    with trace_stack.new_trace() as trace:
        roots = [VJPNode.new_root() for _ in args]
        # A list, not a generator: a tuple grown from a generator is resized, and the resized
        # blocks pile up in CPython's tuple free list (the adjoint's memory would then grow
        # with the number of evaluations, up to that list's cap).
        boxes = [new_box(arg, trace, root) for arg, root in zip(args, roots)]
        result = fun(*boxes)
    if not (isbox(result) and result._trace == trace):  # fun ignores every argument
        return (lambda grad_out: [_zeros_like(arg) for arg in args]), result

    def vjp(grad_out):
        gradients = _backward_pass(grad_out, result._node, roots)
        return [gradients[root] if root in gradients else _zeros_like(arg)
                for root, arg in zip(roots, args)]
    return vjp, result._value


def _backward_pass(grad_out, end_node, roots):
    """Every node's gradient from the end back, as autograd's backward pass; returns the
    gradients that reach ``roots``, by root."""
    root_set = set(roots)
    outgrads, at_roots = {end_node: (grad_out, False)}, {}
    for node in toposort(end_node):
        gradient = outgrads.pop(node)[0]
        if node in root_set:
            at_roots[node] = gradient
            continue
        for parent, parent_gradient in zip(node.parents, node.vjp(gradient)):
            outgrads[parent] = add_outgrads(outgrads.get(parent), parent_gradient)
    return at_roots


def _zeros_like(arg):
    value = getval(arg)
    return backend.xp.zeros(value.shape, dtype=value.dtype)


def traced_beyond(result, inputs):
    """True when autograd traces ``result`` in a trace that none of ``inputs`` belongs to: it
    depends on a differentiated value that reached it some other way than through ``inputs``.

    (An implicit method traces y and t to build its Jacobian, `minode.jacobian`: a result
    traced by that alone is not a closure over another differentiated value.)
    """
    own_traces = {x._trace for x in inputs if isbox(x)}
    while isbox(result) and result._trace in own_traces:
        result = result._value
    return isbox(result)
