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

__all__ = ["vjp_per_argument", "Trace", "traced_beyond"]


def vjp_per_argument(fun, args):
    """``(vjp, value)`` of ``fun(*args)``: ``vjp(grad_out)`` is the list of the gradients w.r.t.
    each argument, zeros (of the argument's shape and dtype) where ``fun`` does not depend on
    it; ``value`` is ``fun(*args)``."""
    trace = Trace(fun, args)
    return trace.vjp, trace.value


class Trace:
    """One trace of ``fun(*args)`` with a root per argument, for one or many VJPs.

    ``value`` is ``fun(*args)``; ``reads[k]`` whether the result depends on ``args[k]``;
    ``vjp(grad_out)`` the list of the gradients w.r.t. each argument (zeros of its shape and
    dtype where ``fun`` does not read it). The nodes are sorted once, here, so many VJPs of one
    trace (the rows of a Jacobian, `minode.jacobian`) share the sort.
    """

    def __init__(self, fun, args):
        with trace_stack.new_trace() as trace:
            self.roots = [VJPNode.new_root() for _ in args]
            # A list, not a generator: a tuple grown from a generator is resized, and the
            # resized blocks pile up in CPython's tuple free list (the adjoint's memory would
            # then grow with the number of evaluations, up to that list's cap).
            boxes = [new_box(arg, trace, root) for arg, root in zip(args, self.roots)]
            result = fun(*boxes)
        self.args = args
        if isbox(result) and result._trace == trace:
            self.value, self.order = result._value, list(toposort(result._node))
        else:  # fun ignores every argument
            self.value, self.order = result, []
        reached = set(self.order)
        self.reads = [root in reached for root in self.roots]

    def vjp(self, grad_out):
        """The gradients w.r.t. each argument of ``grad_out . fun(*args)``: autograd's reverse
        pass (`autograd.core.backward_pass`), collecting every root's gradient."""
        outgrads, at_roots = {}, {}
        if self.order:
            outgrads[self.order[0]] = (grad_out, False)
        roots = self.roots
        for node in self.order:
            entry = outgrads.pop(node, None)
            if entry is None:  # every path from the result carried exact zeros
                continue
            if node in roots:
                at_roots[node] = entry[0]
                continue
            for parent, parent_gradient in zip(node.parents, node.vjp(entry[0])):
                if not _exact_zero(parent_gradient):
                    outgrads[parent] = add_outgrads(outgrads.get(parent), parent_gradient)
        return [at_roots[root] if root in at_roots else _zeros_like(arg)
                for root, arg in zip(roots, self.args)]


def _exact_zero(gradient):
    """True for an untraced single zero: a contribution whose derivatives vanish too (the
    entries that indexing and ``ops.stack`` pass on to the other rows of a Jacobian). Larger
    arrays are not inspected: that would cost a pass over their memory."""
    if isbox(gradient) or getattr(gradient, "size", None) != 1:
        return False
    return not gradient


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
