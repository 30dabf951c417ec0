"""Separable convolution: a kernel that is a sum of outer products runs as 1-D passes.

Section 9.8 of the chapter: when w[k, c] = sum_j fd[j] o fh[j] o fw[j] (an outer product of one
1-D kernel per axis, `terms` of them per (k, c) pair), each term costs kd + kh + kw multiply-adds
per output instead of kd * kh * kw. Arrays arrive lifted to three spatial dimensions, C-contiguous
and flattened; the factors are (K, C / groups, terms, k_axis). A depth or height factor of length
1 must be exactly 1 (the Python side folds such scalars into fw): that pass is skipped.

forward (per work item: sample n, output channel k, output depth o_d, a block of output rows)
  depth   if kd > 1, a slab of input rows = sum_a fd[a] x[n, c, o_d*sd + a*dd - pd]
  height  per output row o: tmp = sum_b fh[b] slab[o*sh + b*dh - ph]           (whole-row axpys)
  width   y[n, k, o_d, o] += sum_t fw[t] tmp[o_w*sw + t*dw - pw]             (unit-stride axpys)
  summed over the input channels c of k's group and the terms, in that fixed order.
grad_input is the adjoint, written as a gather over input rows so that items never share an
output element: per (n, c, input depth, block of input rows), the depth and height passes gather
the rows of gy that reach this input row (with unit stride: the same passes with reversed taps),
and the width pass is a correlation with reversed taps (unit stride) or adds into the phases of
the row (stride > 1). Every pass adds two taps per sweep over its output where it can, and a
strided width pass first splits its row into phases, so every inner loop is a unit-stride axpy.

No padded copy of anything: every pass clips its taps with `valid_range`. Each output element is
computed by the same operations in the same order whatever the blocks and the thread count, so
results are bitwise identical for any number of threads (and any row blocking). For the same
reason the items may go to the threads dynamically: that balances blocks of unequal cost (the
clipped borders) and threads that share their core with other work, and changes no result.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport fabs, pow, sqrt
from libc.string cimport memset

from _geometry cimport Geom, geom_from_spec, valid_range
from _parallel cimport thread_slice


cdef inline void scale_into(floating* out, const floating* a, floating c,
                            Py_ssize_t length) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(length):
        out[j] = c * a[j]


cdef inline void axpy(floating* out, const floating* a, floating c,
                      Py_ssize_t length) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(length):
        out[j] += c * a[j]


cdef inline void axpy2(floating* out, const floating* a, floating c, const floating* b,
                       floating e, Py_ssize_t length) noexcept nogil:
    """out += c * a + e * b: two taps per sweep halve the loads and stores of `out`."""
    cdef Py_ssize_t j
    for j in range(length):
        out[j] += c * a[j] + e * b[j]


cdef bint combine(floating* out, const floating* src, Py_ssize_t src_stride, Py_ssize_t length,
                  const floating* f, Py_ssize_t fstep, Py_ssize_t k, Py_ssize_t d,
                  Py_ssize_t offset, Py_ssize_t n) noexcept nogil:
    """out[:length] = sum_t f[t*fstep] * src[(offset + t*d) * src_stride :][:length] over the taps
    t with 0 <= offset + t*d < n. False (and `out` untouched) when no tap is in range."""
    cdef Py_ssize_t lo, hi, t
    valid_range(0, k, d, offset, n, &lo, &hi)
    if hi <= lo:
        return False
    scale_into(out, src + (offset + lo * d) * src_stride, f[lo * fstep], length)
    t = lo + 1
    while t + 1 < hi:
        axpy2(out, src + (offset + t * d) * src_stride, f[t * fstep],
              src + (offset + (t + 1) * d) * src_stride, f[(t + 1) * fstep], length)
        t += 2
    if t < hi:
        axpy(out, src + (offset + t * d) * src_stride, f[t * fstep], length)
    return True


cdef bint combine_adjoint(floating* out, const floating* src, Py_ssize_t src_stride,
                          Py_ssize_t length, const floating* f, Py_ssize_t k, Py_ssize_t d,
                          Py_ssize_t s, Py_ssize_t target, Py_ssize_t base,
                          Py_ssize_t n) noexcept nogil:
    """The gather form of a transposed pass: out = sum_t f[t] * src row (o - base) over the taps t
    for which o = (target - t*d) / s is a whole number with base <= o < base + n; the taps that
    qualify are added two per sweep."""
    cdef Py_ssize_t t, num, o, pending = -1
    cdef bint first = True
    for t in range(k):
        num = target - t * d
        if num < 0:
            break
        if num % s != 0:
            continue
        o = num // s - base
        if o < 0 or o >= n:
            continue
        if first:
            scale_into(out, src + o * src_stride, f[t], length)
            first = False
        elif pending < 0:
            pending = t
        else:
            axpy2(out, src + ((target - pending * d) // s - base) * src_stride, f[pending],
                  src + o * src_stride, f[t], length)
            pending = -1
    if pending >= 0:
        axpy(out, src + ((target - pending * d) // s - base) * src_stride, f[pending], length)
    return not first


cdef inline bint gather(floating* out, const floating* src, Py_ssize_t src_stride,
                        Py_ssize_t length, const floating* f, Py_ssize_t k, Py_ssize_t d,
                        Py_ssize_t s, Py_ssize_t target, Py_ssize_t base,
                        Py_ssize_t n) noexcept nogil:
    """combine_adjoint; with s == 1 it is `combine` with the taps reversed (two per sweep)."""
    if s == 1:
        return combine(out, src, src_stride, length, f + k - 1, -1, k, d,
                       target - (k - 1) * d - base, n)
    return combine_adjoint(out, src, src_stride, length, f, k, d, s, target, base, n)


cdef inline Py_ssize_t floor_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a // b if a >= 0 else -((-a + b - 1) // b)


cdef inline void axpy_pair(floating* out, const floating* a, floating c, Py_ssize_t lo,
                           Py_ssize_t hi, const floating* b, floating e, Py_ssize_t lo2,
                           Py_ssize_t hi2) noexcept nogil:
    """out[o] += c * a[o] for o in [lo, hi) and e * b[o] for o in [lo2, hi2), one sweep where the
    ranges overlap (hi = lo for an empty range)."""
    cdef Py_ssize_t o
    for o in range(lo, lo2 if lo2 < hi else hi):
        out[o] += c * a[o]
    for o in range(hi2 if hi2 > lo else lo, hi):
        out[o] += c * a[o]
    for o in range(lo2, hi2 if hi2 < lo else lo):
        out[o] += e * b[o]
    for o in range(hi if hi > lo2 else lo2, hi2):
        out[o] += e * b[o]
    for o in range(lo if lo > lo2 else lo2, hi if hi < hi2 else hi2):
        out[o] += c * a[o] + e * b[o]


cdef void correlate_line(floating* out, Py_ssize_t n_out, const floating* row, Py_ssize_t n_in,
                         const floating* f, Py_ssize_t fstep, Py_ssize_t k, Py_ssize_t d,
                         Py_ssize_t s, Py_ssize_t pad, floating* phases) noexcept nogil:
    """out[o] += sum_t f[t*fstep] * row[o*s + t*d - pad], taps outside the row skipped.

    With s > 1 the row is first split into its s phases (phase r holds row[j*s + r], in
    `phases`, s * ceil(n_in / s) values), so that every tap reads one phase with unit stride.
    Two taps per sweep over `out`.
    """
    cdef Py_ssize_t L = (n_in + s - 1) // s, t, j, r, q, lo, hi, lo2, hi2, off
    cdef const floating* a
    cdef const floating* b
    if s > 1:
        for r in range(s):
            for j in range((n_in - r + s - 1) // s):
                phases[r * L + j] = row[j * s + r]
    t = 0
    while t < k:
        off = t * d - pad
        valid_range(0, n_out, s, off, n_in, &lo, &hi)
        q = floor_div(off, s)
        a = row + off if s == 1 else phases + (off - q * s) * L + q
        if t + 1 < k:
            off = off + d
            valid_range(0, n_out, s, off, n_in, &lo2, &hi2)
            q = floor_div(off, s)
            b = row + off if s == 1 else phases + (off - q * s) * L + q
            axpy_pair(out, a, f[t * fstep], lo, hi, b, f[(t + 1) * fstep], lo2, hi2)
            t += 2
        else:
            axpy_pair(out, a, f[t * fstep], lo, hi, a, 0, lo, lo)
            t += 1


cdef void width_pass_adjoint(floating* gxrow, const floating* row, const floating* f,
                             const Geom* g, floating* phases) noexcept nogil:
    """gxrow[o*sw + t*dw - pw] += f[t] * row[o]: the transpose of the width pass. With sw == 1 it
    is a correlation with the reversed taps; with sw > 1 each tap adds into one phase of the row
    with unit stride (`phases`, sw * ceil(iw / sw) values), and the phases are then interleaved
    into gxrow."""
    cdef Py_ssize_t L = (g.iw + g.sw - 1) // g.sw, t, j, r, q, lo, hi, off
    cdef Py_ssize_t pending, q0 = 0, lo0 = 0, hi0 = 0
    if g.sw == 1:
        correlate_line(gxrow, g.iw, row, g.ow, f + g.kw - 1, -1, g.kw, g.dw, 1,
                       (g.kw - 1) * g.dw - g.pw, phases)
        return
    memset(phases, 0, g.sw * L * sizeof(floating))
    for r in range(g.sw):               # phase r gathers its taps, two per sweep
        pending = -1
        for t in range(g.kw):
            off = t * g.dw - g.pw
            q = floor_div(off, g.sw)
            if off - q * g.sw != r:
                continue
            valid_range(0, g.ow, g.sw, off, g.iw, &lo, &hi)
            if pending < 0:
                pending, q0, lo0, hi0 = t, q, lo, hi
                continue
            axpy_pair(phases + r * L, row - q0, f[pending], lo0 + q0, hi0 + q0,
                      row - q, f[t], lo + q, hi + q)
            pending = -1
        if pending >= 0:
            axpy_pair(phases + r * L, row - q0, f[pending], lo0 + q0, hi0 + q0, row, 0, 0, 0)
    for r in range(g.sw):
        for j in range((g.iw - r + g.sw - 1) // g.sw):
            gxrow[j * g.sw + r] += phases[r * L + j]


cdef struct Item:
    Py_ssize_t n, ch, depth, r0, r1     # sample, channel, depth and rows r0..r1-1 of a work item


cdef inline Item item_of(Py_ssize_t item, Py_ssize_t rows, Py_ssize_t nrows, Py_ssize_t channels,
                         Py_ssize_t depths) noexcept nogil:
    """Work item `item` of (n, channel, depth, block of `rows` of the nrows rows), the block
    fastest."""
    cdef Py_ssize_t blocks = (nrows + rows - 1) // rows, rest = item // blocks
    cdef Item it
    it.r0 = (item % blocks) * rows
    it.r1 = min(it.r0 + rows, nrows)
    it.depth = rest % depths
    rest = rest // depths
    it.ch = rest % channels
    it.n = rest // channels
    return it


cdef inline Py_ssize_t phases_size(const Geom* g) noexcept nogil:
    """The scratch a strided width pass splits a row into (none at stride 1)."""
    return g.iw + g.sw if g.sw > 1 else 0


cdef void forward_items(const Geom* g, const floating* x, const floating* fd,
                        const floating* fh, const floating* fw, floating* y, floating* work,
                        Py_ssize_t terms, Py_ssize_t rows, Py_ssize_t work_stride,
                        int num_threads) noexcept nogil:
    """Items are (n, k, o_d, block of `rows` output rows); each writes only its own rows of y."""
    cdef Py_ssize_t blocks = (g.oh + rows - 1) // rows
    cdef Py_ssize_t plane_in = g.ih * g.iw, plane_out = g.oh * g.ow
    cdef Py_ssize_t item, q, cl, fq, y0, y1, nrows, o, yi
    cdef Item it
    cdef floating* tmp
    cdef floating* phases
    cdef floating* slab
    cdef floating* ybase
    cdef floating* yrow
    cdef const floating* xc
    cdef const floating* plane
    cdef const floating* row
    cdef bint ok
    for item in prange(g.N * g.K * g.od * blocks, nogil=True, schedule="dynamic",
                       num_threads=num_threads):
        it = item_of(item, rows, g.oh, g.K, g.od)
        tmp = thread_slice(work, work_stride)
        phases = tmp + g.iw
        slab = phases + phases_size(g)
        ybase = y + ((it.n * g.K + it.ch) * g.od + it.depth) * plane_out
        for q in range(g.Cg * terms):
            cl = q // terms
            fq = (it.ch * g.Cg + cl) * terms + q % terms
            xc = x + (it.n * g.C + (it.ch // g.Kg) * g.Cg + cl) * g.in_vol
            if g.kd == 1:               # fd == 1: the input plane itself
                y0 = 0
                nrows = g.ih
                plane = xc + (it.depth * g.sd - g.pd) * plane_in
                ok = 0 <= it.depth * g.sd - g.pd < g.id
            else:                       # the rows this block reads, combined along depth
                y0 = max(it.r0 * g.sh - g.ph, 0)
                y1 = min((it.r1 - 1) * g.sh - g.ph + (g.kh - 1) * g.dh + 1, g.ih)
                nrows = y1 - y0
                plane = slab
                ok = nrows > 0 and combine(slab, xc + y0 * g.iw, plane_in, nrows * g.iw,
                                           fd + fq * g.kd, 1, g.kd, g.dd,
                                           it.depth * g.sd - g.pd, g.id)
            for o in range(it.r0, it.r1):
                yrow = ybase + o * g.ow
                if q == 0:
                    memset(yrow, 0, g.ow * sizeof(floating))
                if not ok:
                    continue
                if g.kh == 1:           # fh == 1: one input row
                    yi = o * g.sh - g.ph - y0
                    if yi < 0 or yi >= nrows:
                        continue
                    row = plane + yi * g.iw
                else:
                    if not combine(tmp, plane, g.iw, g.iw, fh + fq * g.kh, 1, g.kh, g.dh,
                                   o * g.sh - g.ph - y0, nrows):
                        continue
                    row = tmp
                correlate_line(yrow, g.ow, row, g.iw, fw + fq * g.kw, 1, g.kw, g.dw, g.sw, g.pw,
                               phases)


cdef void grad_input_items(const Geom* g, const floating* gy, const floating* fd,
                           const floating* fh, const floating* fw, floating* gx, floating* work,
                           Py_ssize_t terms, Py_ssize_t rows, Py_ssize_t work_stride,
                           int num_threads) noexcept nogil:
    """Items are (n, c, input depth, block of `rows` input rows); each writes only its gx rows."""
    cdef Py_ssize_t blocks = (g.ih + rows - 1) // rows
    cdef Py_ssize_t plane_in = g.ih * g.iw, plane_out = g.oh * g.ow
    cdef Py_ssize_t item, q, k, fq, num, g0, g1, nrows, i, oi
    cdef Item it
    cdef floating* tmp
    cdef floating* phases
    cdef floating* slab
    cdef floating* gxbase
    cdef floating* gxrow
    cdef const floating* gyk
    cdef const floating* plane
    cdef const floating* row
    cdef bint ok
    for item in prange(g.N * g.C * g.id * blocks, nogil=True, schedule="dynamic",
                       num_threads=num_threads):
        it = item_of(item, rows, g.ih, g.C, g.id)
        tmp = thread_slice(work, work_stride)
        phases = tmp + g.ow
        slab = phases + phases_size(g)
        gxbase = gx + ((it.n * g.C + it.ch) * g.id + it.depth) * plane_in
        for q in range(g.Kg * terms):
            k = (it.ch // g.Cg) * g.Kg + q // terms
            fq = (k * g.Cg + it.ch % g.Cg) * terms + q % terms
            gyk = gy + (it.n * g.K + k) * g.P
            if g.kd == 1:
                g0 = 0
                nrows = g.oh
                num = it.depth + g.pd
                ok = num % g.sd == 0 and num // g.sd < g.od
                plane = gyk + (num // g.sd) * plane_out
            else:                       # the rows of gy that reach this block
                num = it.r0 + g.ph - (g.kh - 1) * g.dh
                g0 = (num + g.sh - 1) // g.sh if num > 0 else 0
                g1 = min((it.r1 - 1 + g.ph) // g.sh + 1, g.oh)
                nrows = g1 - g0
                plane = slab
                ok = nrows > 0 and gather(slab, gyk + g0 * g.ow, plane_out, nrows * g.ow,
                                          fd + fq * g.kd, g.kd, g.dd, g.sd, it.depth + g.pd, 0,
                                          g.od)
            for i in range(it.r0, it.r1):
                gxrow = gxbase + i * g.iw
                if q == 0:
                    memset(gxrow, 0, g.iw * sizeof(floating))
                if not ok:
                    continue
                if g.kh == 1:
                    num = i + g.ph
                    if num % g.sh != 0:
                        continue
                    oi = num // g.sh - g0
                    if oi < 0 or oi >= nrows:
                        continue
                    row = plane + oi * g.ow
                else:
                    if not gather(tmp, plane, g.ow, g.ow, fh + fq * g.kh, g.kh, g.dh, g.sh,
                                  i + g.ph, g0, nrows):
                        continue
                    row = tmp
                width_pass_adjoint(gxrow, row, fw + fq * g.kw, g, phases)


def forward(spec, const floating[::1] x, const floating[::1] fd, const floating[::1] fh,
            const floating[::1] fw, floating[::1] y, floating[::1] work, Py_ssize_t terms,
            Py_ssize_t rows, Py_ssize_t work_stride, int num_threads):
    """y = conv(x, sum of `terms` outer products fd o fh o fw) for the lifted problem `spec`.

    `work` holds num_threads * work_stride values: a row of iw, (sw > 1) the phases of a row,
    iw + sw values, and (kd > 1) a slab of the input rows one block of `rows` output rows reads.
    """
    cdef Geom g = geom_from_spec(spec)
    with nogil:
        forward_items(&g, &x[0], &fd[0], &fh[0], &fw[0], &y[0], &work[0], terms, rows,
                      work_stride, num_threads)


def grad_input(spec, const floating[::1] gy, const floating[::1] fd, const floating[::1] fh,
               const floating[::1] fw, floating[::1] gx, floating[::1] work, Py_ssize_t terms,
               Py_ssize_t rows, Py_ssize_t work_stride, int num_threads):
    """gx = conv_grad_input(gy, w) (eq. 9.13) for the separable w; `work` as in `forward`, with
    a row of ow, the phases and a slab of the rows of gy one block of `rows` input rows reads."""
    cdef Geom g = geom_from_spec(spec)
    with nogil:
        grad_input_items(&g, &gy[0], &fd[0], &fh[0], &fw[0], &gx[0], &work[0], terms, rows,
                         work_stride, num_threads)


def cross_factors(const double[:, :, :, ::1] t, double[:, ::1] fd, double[:, ::1] fh,
                  double[:, ::1] fw, double[::1] residual, double[::1] norm):
    """The cross (skeleton) approximation of each slice t[b] (kd, kh, kw), in one pass per slice.

    With p = t[b, i, j, l] the entry of largest magnitude: t[b] ~= t[b, :, j, l] o t[b, i, :, l]
    o t[b, i, j, :] / p^2, written as fd o fh o fw with the |p| spread evenly over the axes longer
    than 1 (the sign on the first) and the factors of the other axes exactly 1. Fills the factors
    and, per slice, the Frobenius norms of the residual and of t[b].
    """
    cdef Py_ssize_t B = t.shape[0], kd = t.shape[1], kh = t.shape[2], kw = t.shape[3]
    cdef Py_ssize_t b, a, e, u, i, j, l, n = (kd > 1) + (kh > 1) + (kw > 1)
    cdef double p, best, v, scale, sign, r2, n2
    with nogil:
        for b in range(B):
            best = -1
            i = j = l = 0
            n2 = 0
            for a in range(kd):
                for e in range(kh):
                    for u in range(kw):
                        v = t[b, a, e, u]
                        n2 += v * v
                        if fabs(v) > best:
                            best = fabs(v)
                            i, j, l = a, e, u
            p = t[b, i, j, l]
            scale = 0 if p == 0 else (1 if n <= 1 else pow(fabs(p), -(n - 1.0) / n))
            sign = -1 if (p < 0 and n % 2 == 0) else 1
            for a in range(kd):
                fd[b, a] = t[b, a, j, l] * scale * sign if kd > 1 else 1
            for e in range(kh):
                fh[b, e] = t[b, i, e, l] * scale * (sign if kd == 1 else 1) if kh > 1 else 1
            for u in range(kw):
                fw[b, u] = (t[b, i, j, u] * scale * (sign if kd == 1 and kh == 1 else 1)
                            if kw > 1 or n == 0 else 1)
            r2 = 0
            for a in range(kd):
                for e in range(kh):
                    for u in range(kw):
                        v = t[b, a, e, u] - fd[b, a] * fh[b, e] * fw[b, u]
                        r2 += v * v
            residual[b] = sqrt(r2)
            norm[b] = sqrt(n2)
