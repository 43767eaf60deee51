"""minode's differentiable primitives, each with its VJP written out beside it.

Import as ``from minode import ops`` and write models with ``ops.tanh``, ``ops.matmul``, ... so
they run on NumPy and CuPy alike. Arithmetic operators on traced arrays work too.
"""
from minode.ops.conv import (avg_pool2d, col2im, conv2d, conv2d_input_grad, conv2d_weight_grad,
                             global_avg_pool, im2col)
from minode.ops.elementwise import (absolute, add, as_dtype, astype, cos, divide, elu, exp, log,
                                    multiply, negative, power, relu, sigmoid, sin, softplus,
                                    sqrt, square, subtract, tanh, where)
from minode.ops.linalg import LUFactors, linear, lu_factor, lu_solve, matmul
from minode.ops.losses import (cross_entropy, gaussian_log_likelihood,
                               kl_diag_gaussian_to_standard, log_softmax, mean_absolute_error,
                               mean_squared_error)
from minode.ops.norm import group_norm
from minode.ops.planar_units import planar_field_and_trace, planar_hidden
from minode.ops.reductions import logsumexp, mean, sum
from minode.ops.shapes import (as_shape, concatenate, getitem, ravel, reshape, stack, swapaxes,
                               transpose, window)
