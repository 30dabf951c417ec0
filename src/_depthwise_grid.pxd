"""The channel-blocked depthwise layout's staging (src/_depthwise.pyx): planes into the zero-
padded grid of channel vectors and output rows back into planes, by the register transposes of
Winograd's kernels (wg_stage, wg_unstage), compiled at the depthwise set's level."""
from cython cimport floating
from libc.string cimport memcpy, memset

from _wg_staging cimport wg_stage_double, wg_stage_float, wg_unstage_double, wg_unstage_float

# Winograd's kernels compiled at this set's level (the staging's definitions, _wg_staging.pxd)
cdef extern from "_depthwise_stage.h":
    void wg_init() noexcept nogil


cdef struct Plane2:
    Py_ssize_t h, w             # the plane staged (input, or gy for grad_input)
    Py_ssize_t ph, pw           # zeros before it in the grid (negative: rows or columns cut)
    Py_ssize_t gh, gw           # the grid


cdef inline void stage_flat(const floating* src, Py_ssize_t count, Py_ssize_t vol,
                            floating* dst, Py_ssize_t lanes) noexcept nogil:
    """dst[q][v] = plane v of src (planes vol apart, one row of vol values), zeros past count."""
    if floating is float:
        wg_stage_float(src, count, vol, 1, vol, 0, 0, 1, vol, dst, lanes)
    else:
        wg_stage_double(src, count, vol, 1, vol, 0, 0, 1, vol, dst, lanes)


cdef inline void clear_grids(floating* scratch, Py_ssize_t step, Py_ssize_t at,
                             const Plane2* p, Py_ssize_t lanes, int threads) noexcept nogil:
    """Zero each thread's grid (at `at` in its slice of `step` values) once a call where
    stage_grid goes through `flat` (rows shorter than a vector): it then copies only the plane's
    rows, the zeros around them staying from plane to plane (60 memsets a plane took 4% of
    ConvNeXt's 384-channel 14x14 forward)."""
    cdef int t
    if p.w < lanes:
        for t in range(threads):
            memset(scratch + t * step + at, 0, p.gh * p.gw * lanes * sizeof(floating))


cdef inline void stage_grid(const floating* src, Py_ssize_t count, const Plane2* p,
                            floating* flat, floating* grid, Py_ssize_t lanes) noexcept nogil:
    """grid[r][q][v] = plane v of src (planes h x w apart) at (r - ph, q - pw), zeros outside it
    and past count. Rows of a vector or more are transposed straight into the grid; shorter
    ones (a 14x14 plane at AVX-512) go through `flat`, the plane transposed as one run, and are
    copied row by row into a grid whose zeros clear_grids wrote (straight, they would go value
    by value). The copy through `flat` took 8% of ConvNeXt's 96-channel 56x56 7x7 forward at
    batch 8."""
    cdef Py_ssize_t r, i, q0, q1
    if p.w >= lanes:
        if floating is float:
            wg_stage_float(src, count, p.h * p.w, p.h, p.w, -p.ph, -p.pw, p.gh, p.gw, grid, lanes)
        else:
            wg_stage_double(src, count, p.h * p.w, p.h, p.w, -p.ph, -p.pw, p.gh, p.gw, grid,
                            lanes)
        return
    stage_flat(src, count, p.h * p.w, flat, lanes)
    q0 = min(max(p.pw, 0), p.gw)
    q1 = max(min(p.pw + p.w, p.gw), q0)
    for r in range(p.gh):
        i = r - p.ph
        if 0 <= i < p.h and q1 > q0:
            memcpy(grid + (r * p.gw + q0) * lanes, flat + (i * p.w + q0 - p.pw) * lanes,
                   (q1 - q0) * lanes * sizeof(floating))


cdef inline void unstage(const floating* rows, Py_ssize_t ycols, floating* dst,
                         Py_ssize_t count, Py_ssize_t h, Py_ssize_t w,
                         Py_ssize_t lanes) noexcept nogil:
    """Planes v < count of dst (h x w, h * w apart) = rows[r][q][v] (rows ycols apart)."""
    if floating is float:
        wg_unstage_float(rows, ycols, lanes, dst, count, h * w, h, w, 0, 0, h, w)
    else:
        wg_unstage_double(rows, ycols, lanes, dst, count, h * w, h, w, 0, 0, h, w)
