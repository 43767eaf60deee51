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
import threading

from autograd.extend import defvjp, primitive

from minode import backend
from minode.ops.reductions import mean
from minode.ops.shapes import getitem, reshape


def _output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def _window(start, count, stride):
    """The slice picking ``count`` positions ``start, start + stride, ...``."""
    return slice(start, start + stride * (count - 1) + 1, stride)


# glibc returns freed blocks of more than about a megabyte to the kernel, so a fresh
# (C*kh*kw, H_out*W_out*N) buffer at every convolution is paid for again in page faults (half
# the time of the ODE block's forward + VJP). The buffers that never leave a primitive (the
# patches, the padded image) are therefore kept per thread and shape and reused.
_workspace = threading.local()
_WORKSPACE_MAX_BYTES = 32 << 20  # larger ones (big evaluation batches) are not kept
_WORKSPACE_MAX_BUFFERS = 16


def _scratch(role, shape, dtype, zeros=False):
    """An array of ``shape`` owned by this module, reused by later calls (made with zeros
    where asked, else uninitialised).

    Only for temporaries that are dead when the primitive returns: the next call with the same
    ``role``, shape and dtype overwrites it."""
    xp = backend.xp
    if not hasattr(_workspace, "buffers"):
        _workspace.buffers = {}
    buffers = _workspace.buffers
    key = (backend.name, role, shape, str(dtype))
    buffer = buffers.get(key)
    if buffer is None:
        buffer = (xp.zeros if zeros else xp.empty)(shape, dtype=dtype)
        if buffer.nbytes <= _WORKSPACE_MAX_BYTES:
            if len(buffers) >= _WORKSPACE_MAX_BUFFERS:
                buffers.pop(next(iter(buffers)))  # the oldest
            buffers[key] = buffer
    return buffer


def _padded(role, x_shape, dtype, padding):
    """A (C, H + 2 padding, W + 2 padding, N) workspace for ``x_shape`` (N, C, H, W).

    For "im2col" it is zero outside the image (made with zeros; `_patches` overwrites only the
    inside, so the border stays zero across reuses); for "col2im", which adds into all of it,
    it is zeroed at every call."""
    n, c, h, w = x_shape
    shape = (c, h + 2 * padding, w + 2 * padding, n)
    if role == "im2col":
        return _scratch((role, padding), shape, dtype, zeros=True)
    padded = _scratch(role, shape, dtype)
    padded.fill(0)
    return padded


def _patches(x, kernel_size, stride, padding, out):
    """Write im2col(x) into ``out`` (C, kh, kw, H_out, W_out, N); returns it as a matrix."""
    kh, kw = kernel_size
    n, c, h, w = x.shape
    _, _, _, h_out, w_out, _ = out.shape
    # Layout (C, H, W, N), batch innermost: for stride 1 each kernel offset is then a copy of
    # contiguous runs of W_out*N numbers (not of short image rows of W_out), and the columns come
    # out in the order the matrix product wants.
    padded = _padded("im2col", x.shape, x.dtype, padding)
    padded[:, padding:padding + h, padding:padding + w, :] = backend.xp.transpose(x, (1, 2, 3, 0))
    for i in range(kh):
        for j in range(kw):
            out[:, i, j] = padded[:, _window(i, h_out, stride), _window(j, w_out, stride), :]
    return backend.xp.reshape(out, (c * kh * kw, h_out * w_out * n))


def _patches_shape(x_shape, kernel_size, stride, padding):
    n, c, h, w = x_shape
    kh, kw = kernel_size
    return (c, kh, kw, _output_size(h, kh, stride, padding), _output_size(w, kw, stride, padding),
            n)


def _scratch_patches(x, kernel_size, stride, padding):
    """im2col(x) in this module's workspace: valid until the next convolution."""
    shape = _patches_shape(x.shape, kernel_size, stride, padding)
    return _patches(x, kernel_size, stride, padding, _scratch("cols", shape, x.dtype))


def _add_patches(cols, x_shape, kernel_size, stride, padding):
    """col2im: add the columns ``cols`` back onto their pixels; a new (N, C, H, W) array."""
    xp = backend.xp
    kh, kw = kernel_size
    n, c, h, w = x_shape
    shape = _patches_shape(x_shape, kernel_size, stride, padding)
    cols = xp.reshape(cols, shape)
    h_out, w_out = shape[3:5]
    padded = _padded("col2im", x_shape, cols.dtype, padding)
    for i in range(kh):
        for j in range(kw):
            padded[:, _window(i, h_out, stride), _window(j, w_out, stride), :] += cols[:, i, j]
    inner = padded[:, padding:padding + h, padding:padding + w, :]
    # copy(), not ascontiguousarray: for N = 1 the transpose is already contiguous, and the
    # result must not be a view of the workspace.
    return xp.transpose(inner, (3, 0, 1, 2)).copy()


@primitive
def im2col(x, kernel_size, stride=1, padding=0):
    """The (kh, kw) patches of ``x`` (N, C, H, W) as columns: shape (C*kh*kw, H_out*W_out*N).

    Row ``(c, i, j)`` holds input channel ``c`` at kernel offset ``(i, j)``; column ``(p, q, n)``
    is the patch of image ``n`` whose top-left corner sits at ``(p*stride - padding,
    q*stride - padding)``. Zero padding is applied on all four sides.
    """
    shape = _patches_shape(x.shape, kernel_size, stride, padding)
    return _patches(x, kernel_size, stride, padding, backend.xp.empty(shape, dtype=x.dtype))


@primitive
def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """The adjoint of `im2col`: add every column entry back onto the pixel it was copied from.

    ``cols`` has the shape `im2col` returns for an input of ``x_shape``. Overlapping patches
    share pixels, so their contributions accumulate; entries that came from the zero padding
    are dropped. Returns an array of shape ``x_shape`` (N, C, H, W).
    """
    return _add_patches(cols, x_shape, kernel_size, stride, padding)


defvjp(im2col, lambda result, x, kernel_size, stride=1, padding=0: lambda grad_out: col2im(
    grad_out, x.shape, kernel_size, stride, padding))
defvjp(col2im, lambda result, cols, x_shape, kernel_size, stride=1, padding=0:
       lambda grad_out: reshape(im2col(grad_out, kernel_size, stride, padding), cols.shape))


def _filter_matrix(w):
    """``w`` (C_out, C, kh, kw) as the (C_out, C*kh*kw) matrix W (a view on every backend)."""
    return backend.xp.reshape(w, (w.shape[0], -1))


def _output_matrix(grad_out):
    """An (N, C_out, H_out, W_out) array as the (C_out, H_out*W_out*N) matrix G (a copy)."""
    xp = backend.xp
    return xp.reshape(xp.transpose(grad_out, (1, 2, 3, 0)), (grad_out.shape[1], -1))


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
    product = xp.matmul(_filter_matrix(w), _scratch_patches(x, (kh, kw), stride, padding))
    # (C_out, H_out*W_out*N) -> contiguous (N, C_out, H_out, W_out)
    return xp.ascontiguousarray(xp.transpose(xp.reshape(product, (c_out, h_out, w_out, n)),
                                             (3, 0, 1, 2)))


@primitive
def conv2d_input_grad(grad_out, w, x_shape, stride=1, padding=0):
    """The VJP of `conv2d` with respect to x: ``col2im(W^T G)``, shape ``x_shape``.

    ``grad_out`` (N, C_out, H_out, W_out) is the cotangent of conv2d's output and G its
    (C_out, H_out*W_out*N) matrix; this is the transposed convolution of ``grad_out`` with ``w``.
    """
    if w.shape[1] != x_shape[1]:
        raise ValueError(f"conv2d_input_grad: w has {w.shape[1]} input channels but x_shape "
                         f"{tuple(x_shape)} has {x_shape[1]}; pass the x_shape and w of the "
                         f"conv2d whose cotangent grad_out is")
    _check_grad_out("conv2d_input_grad", grad_out, x_shape, w.shape[0], w.shape[2:], stride,
                    padding)
    xp = backend.xp
    kernel_size = w.shape[2:]
    grad_cols = _scratch("grad_cols", _patches_shape(x_shape, kernel_size, stride, padding),
                         grad_out.dtype)
    xp.matmul(xp.transpose(_filter_matrix(w)), _output_matrix(grad_out),
              out=xp.reshape(grad_cols, (w.shape[1] * w.shape[2] * w.shape[3], -1)))
    return _add_patches(grad_cols, x_shape, kernel_size, stride, padding)


@primitive
def conv2d_weight_grad(x, grad_out, kernel_size, stride=1, padding=0):
    """The VJP of `conv2d` with respect to w: ``G im2col(x)^T`` as (C_out, C, kh, kw).

    Evaluated as ``(im2col(x) G^T)^T``: BLAS runs that orientation faster.
    """
    _check_grad_out("conv2d_weight_grad", grad_out, x.shape, None, kernel_size, stride, padding)
    xp = backend.xp
    cols = _scratch_patches(x, kernel_size, stride, padding)
    product = xp.matmul(cols, xp.transpose(_output_matrix(grad_out)))
    return xp.reshape(xp.transpose(product), (grad_out.shape[1], x.shape[1]) + tuple(kernel_size))


# conv2d, conv2d_input_grad and conv2d_weight_grad are bilinear, and each one's VJPs are the
# other two with the cotangent in place of one argument (for y = conv2d(x, w) with cotangent G:
# <G, W im2col(x)> = <W^T G, im2col(x)> = <G im2col(x)^T, W>), so gradients of every order stay
# within these three primitives.
defvjp(conv2d,
       lambda result, x, w, stride=1, padding=0: lambda grad_out: conv2d_input_grad(
           grad_out, w, x.shape, stride, padding),
       lambda result, x, w, stride=1, padding=0: lambda grad_out: conv2d_weight_grad(
           x, grad_out, w.shape[2:], stride, padding))
defvjp(conv2d_input_grad,
       lambda result, grad_out, w, x_shape, stride=1, padding=0: lambda grad_x: conv2d(
           grad_x, w, stride, padding),
       lambda result, grad_out, w, x_shape, stride=1, padding=0: lambda grad_x:
       conv2d_weight_grad(grad_x, grad_out, w.shape[2:], stride, padding))
defvjp(conv2d_weight_grad,
       lambda result, x, grad_out, kernel_size, stride=1, padding=0: lambda grad_w:
       conv2d_input_grad(grad_out, grad_w, x.shape, stride, padding),
       lambda result, x, grad_out, kernel_size, stride=1, padding=0: lambda grad_w: conv2d(
           x, grad_w, stride, padding))


def _check_grad_out(name, grad_out, x_shape, c_out, kernel_size, stride, padding):
    """Refuse a ``grad_out`` whose shape is not conv2d's output shape for ``x_shape``, ``c_out``
    output channels (None: any), ``kernel_size``, ``stride`` and ``padding``: the matrix
    products would take any array of as many entries, laid out wrongly."""
    kh, kw = kernel_size
    shape = tuple(grad_out.shape)
    if c_out is None:
        c_out = shape[1] if len(shape) == 4 else "C_out"
    expected = (x_shape[0], c_out, _output_size(x_shape[2], kh, stride, padding),
                _output_size(x_shape[3], kw, stride, padding))
    if shape != expected:
        expected = "(" + ", ".join(str(size) for size in expected) + ")"
        raise ValueError(f"{name}: grad_out must have conv2d's output shape {expected} for "
                         f"x of shape {tuple(x_shape)}, kernel {kh}x{kw}, stride {stride} and "
                         f"padding {padding}, got {shape}; pass the cotangent of that conv2d's "
                         f"output")


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
