# The convolution geometry as the kernels see it. Python builds one ConvSpec per call
# (fastconv/_geometry.py), already lifted to three spatial dimensions; `geom_from_spec` copies it
# into this plain struct once, so `nogil` loops read ints, not Python objects.

cdef struct Geom:
    Py_ssize_t N, C, K, G          # batch, input channels, output channels, groups
    Py_ssize_t Cg, Kg              # channels per group (input, output)
    Py_ssize_t id, ih, iw          # input size (depth, height, width)
    Py_ssize_t kd, kh, kw          # kernel size
    Py_ssize_t od, oh, ow          # output size
    Py_ssize_t sd, sh, sw          # stride
    Py_ssize_t dd, dh, dw          # dilation
    Py_ssize_t pd, ph, pw          # zero padding before the first element (the "low" side)
    Py_ssize_t in_vol, k_vol, P    # id*ih*iw, kd*kh*kw, od*oh*ow


cdef inline Geom geom_from_spec(object spec) except *:
    cdef Geom g
    g.N = spec.batch
    g.C = spec.in_channels
    g.K = spec.out_channels
    g.G = spec.groups
    g.Cg = g.C // g.G
    g.Kg = g.K // g.G
    g.id, g.ih, g.iw = spec.input_size
    g.kd, g.kh, g.kw = spec.kernel_size
    g.od, g.oh, g.ow = spec.output_size
    g.sd, g.sh, g.sw = spec.stride
    g.dd, g.dh, g.dw = spec.dilation
    g.pd, g.ph, g.pw = spec.pad_low
    g.in_vol = g.id * g.ih * g.iw
    g.k_vol = g.kd * g.kh * g.kw
    g.P = g.od * g.oh * g.ow
    return g


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) for b > 0 and any sign of a (|a| <= 2**63 - 1), without an intermediate that
    could overflow (a + b - 1 does for a stride near 2**63)."""
    if a >= 0:
        return a // b + (1 if a % b else 0)
    return -((-a) // b)


cdef inline void valid_range(Py_ssize_t start, Py_ssize_t stop, Py_ssize_t stride,
                             Py_ssize_t offset, Py_ssize_t n,
                             Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Clip [start, stop) to the output indices o with 0 <= o * stride + offset < n; always
    start <= lo <= hi <= stop (callers fill [start, lo) and [hi, stop) with zeros: a tap whose
    first valid output lies past `stop`, as a padding far beyond the kernel makes it, must not
    push lo past stop)."""
    cdef Py_ssize_t a = ceil_div(-offset, stride)
    cdef Py_ssize_t b = ceil_div(n - offset, stride)
    lo[0] = start if start > a else a
    if lo[0] > stop:
        lo[0] = stop
    hi[0] = stop if stop < b else b
    if hi[0] < lo[0]:
        hi[0] = lo[0]
