"""Convolution and pooling for NCHW images: im2col turns a convolution into one matrix product.

For an input ``x`` of shape (N, C, H, W) and weights ``w`` of shape (C_out, C, kh, kw), every output
pixel is a dot product between the flattened weights of one output channel and the (C, kh, kw)
patch of ``x`` under the kernel. `im2col` copies every patch into one column of a matrix ``cols``
of shape (C*kh*kw, H_out*W_out*N); then

    out = W cols                  with W = w.reshape(C_out, C*kh*kw): one BLAS matrix product,

and the gradients are the two matrix-product VJPs plus the adjoint of the copy:

    grad_W    = grad_out cols^T   (the weight gradient),
    grad_cols = W^T grad_out,  grad_x = col2im(grad_cols)   (each patch entry is added back to
                                                            the pixel it was copied from).

im2col and col2im are each other's VJP, and the VJPs of conv2d are built from them and matrix
products, so gradients of every order are convolutions again.
"""
from autograd.extend import defvjp, defvjp_argnums, primitive

from minode import backend
from minode.ops.linalg import matmul
from minode.ops.reductions import mean
from minode.ops.shapes import getitem, reshape, transpose


def _output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def _window(start, count, stride):
    """The slice picking ``count`` positions ``start, start + stride, ...``."""
    return slice(start, start + stride * (count - 1) + 1, stride)


@primitive
def im2col(x, kernel_size, stride=1, padding=0):
    """The (kh, kw) patches of ``x`` (N, C, H, W) as columns: shape (C*kh*kw, H_out*W_out*N).

    Row ``(c, i, j)`` holds input channel ``c`` at kernel offset ``(i, j)``; column ``(p, q, n)``
    is the patch of image ``n`` whose top-left corner sits at ``(p*stride - padding,
    q*stride - padding)``. Zero padding is applied on all four sides.
    """
    xp = backend.xp
    kh, kw = kernel_size
    n, c, h, w = x.shape
    h_out, w_out = _output_size(h, kh, stride, padding), _output_size(w, kw, stride, padding)
    # Layout (C, H, W, N), batch innermost: for stride 1 each kernel offset is then a copy of
    # contiguous runs of W_out*N numbers (not of short image rows of W_out), and the columns come
    # out in the order the matrix product wants.
    padded = xp.zeros((c, h + 2 * padding, w + 2 * padding, n), dtype=x.dtype)
    padded[:, padding:padding + h, padding:padding + w, :] = xp.transpose(x, (1, 2, 3, 0))
    cols = xp.empty((c, kh, kw, h_out, w_out, n), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = padded[:, _window(i, h_out, stride), _window(j, w_out, stride), :]
    return xp.reshape(cols, (c * kh * kw, h_out * w_out * n))


@primitive
def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """The adjoint of `im2col`: add every column entry back onto the pixel it was copied from.

    ``cols`` has the shape `im2col` returns for an input of ``x_shape``. Overlapping patches
    share pixels, so their contributions accumulate; entries that came from the zero padding
    are dropped. Returns an array of shape ``x_shape`` (N, C, H, W).
    """
    xp = backend.xp
    kh, kw = kernel_size
    n, c, h, w = x_shape
    h_out, w_out = _output_size(h, kh, stride, padding), _output_size(w, kw, stride, padding)
    cols = xp.reshape(cols, (c, kh, kw, h_out, w_out, n))
    padded = xp.zeros((c, h + 2 * padding, w + 2 * padding, n), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, _window(i, h_out, stride), _window(j, w_out, stride), :] += cols[:, i, j]
    inner = padded[:, padding:padding + h, padding:padding + w, :]
    return xp.ascontiguousarray(xp.transpose(inner, (3, 0, 1, 2)))


defvjp(im2col, lambda result, x, kernel_size, stride=1, padding=0: lambda grad_out: col2im(
    grad_out, x.shape, kernel_size, stride, padding))
defvjp(col2im, lambda result, cols, x_shape, kernel_size, stride=1, padding=0:
       lambda grad_out: reshape(im2col(grad_out, kernel_size, stride, padding), cols.shape))


def _filter_matrix(w):
    """``w`` (C_out, C, kh, kw) as the (C_out, C*kh*kw) matrix W."""
    return reshape(w, (w.shape[0], -1))


@primitive
def conv2d(x, w, stride=1, padding=0):
    """2-D cross-correlation (deep learning's "convolution") of NCHW ``x`` with ``w``.

    ``x``: (N, C, H, W); ``w``: (C_out, C, kh, kw); zero ``padding`` on every side and the same
    ``stride`` along both axes. Returns (N, C_out, H_out, W_out) with
    ``H_out = (H + 2 padding - kh) // stride + 1``:

        out[n, o, p, q] = sum_{c, i, j} w[o, c, i, j] x_pad[n, c, p*stride + i, q*stride + j],

    computed as ``W im2col(x)`` (see the module docstring). Add a bias with a broadcast ``add``
    of shape (1, C_out, 1, 1).
    """
    _check_conv_args(x, w, stride, padding)
    xp = backend.xp
    n, _, h, width = x.shape
    c_out, _, kh, kw = w.shape
    h_out, w_out = _output_size(h, kh, stride, padding), _output_size(width, kw, stride, padding)
    product = xp.matmul(_filter_matrix(w), im2col(x, (kh, kw), stride, padding))
    # (C_out, H_out*W_out*N) -> contiguous (N, C_out, H_out, W_out)
    return xp.ascontiguousarray(xp.transpose(xp.reshape(product, (c_out, h_out, w_out, n)),
                                             (3, 0, 1, 2)))


def _conv2d_vjp(argnums, result, args, kwargs):
    # G = grad_out as a (C_out, H_out*W_out*N) matrix, shared by both gradients:
    #     grad_x = col2im(W^T G),
    #     grad_W = G cols^T, evaluated as (cols G^T)^T (BLAS runs that orientation faster).
    # cols = im2col(x) is recomputed here rather than kept from the forward pass: it is
    # kh*kw times larger than x, and rebuilding it is cheaper than reading it back from memory.
    return _conv2d_vjp_of(argnums, *args, **kwargs)


def _conv2d_vjp_of(argnums, x, w, stride=1, padding=0):
    kernel_size = w.shape[2:]

    def vjp(grad_out):
        grad_matrix = reshape(transpose(grad_out, (1, 2, 3, 0)), (grad_out.shape[1], -1))
        grads = []
        if 0 in argnums:
            grad_cols = matmul(transpose(_filter_matrix(w)), grad_matrix)
            grads.append(col2im(grad_cols, x.shape, kernel_size, stride, padding))
        if 1 in argnums:
            cols = im2col(x, kernel_size, stride, padding)
            grads.append(reshape(transpose(matmul(cols, transpose(grad_matrix))), w.shape))
        return tuple(grads)
    return vjp


defvjp_argnums(conv2d, _conv2d_vjp)


def _check_conv_args(x, w, stride, padding):
    if x.ndim != 4:
        raise ValueError(f"conv2d: x must be (N, C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"conv2d: w must be (C_out, C_in, kh, kw), got shape {w.shape}")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"conv2d: w has {w.shape[1]} input channels but x has {x.shape[1]} "
                         f"(x shape {x.shape}, w shape {w.shape})")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"conv2d: stride must be a positive integer, got {stride!r}")
    if int(padding) != padding or padding < 0:
        raise ValueError(f"conv2d: padding must be a non-negative integer, got {padding!r}")
    for axis, name in ((2, "height"), (3, "width")):
        size, kernel = x.shape[axis], w.shape[axis]
        if size + 2 * padding < kernel:
            raise ValueError(f"conv2d: the kernel {name} {kernel} is larger than x's padded "
                             f"{name} {size + 2 * padding}")


def avg_pool2d(x, size):
    """Mean over non-overlapping ``size`` x ``size`` windows of NCHW ``x`` (stride = ``size``).

    Rows and columns that do not fill a whole window are dropped, as in PyTorch. Written with
    ``reshape`` and ``mean``, so each input pixel receives ``grad_out / size**2`` of its window.
    """
    if x.ndim != 4:
        raise ValueError(f"avg_pool2d: x must be (N, C, H, W), got shape {x.shape}")
    if int(size) != size or not 1 <= size <= min(x.shape[2:]):
        raise ValueError(f"avg_pool2d: size must be an integer in [1, {min(x.shape[2:])}] for "
                         f"x of shape {x.shape}, got {size!r}")
    n, c, h, w = x.shape
    h_out, w_out = h // size, w // size
    if (h, w) != (h_out * size, w_out * size):
        x = getitem(x, (slice(None), slice(None), slice(0, h_out * size), slice(0, w_out * size)))
    return mean(reshape(x, (n, c, h_out, size, w_out, size)), axis=(3, 5))


def global_avg_pool(x):
    """Mean over the spatial axes of NCHW ``x``: shape (N, C)."""
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool: x must be (N, C, H, W), got shape {x.shape}")
    return mean(x, axis=(2, 3))
