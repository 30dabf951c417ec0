# The work items of im2col (src/_im2col.pyx), each a decomposition of an item number into the
# part of the problem it computes: chunks of output positions, blocks of channels, and the
# input gradient's parts of the positions. Helpers return structs (see _parallel.pxd: a prange
# body's variables are private only where the body assigns them).
from _geometry cimport Geom
from _parallel cimport part_start


cdef struct Chunk:
    Py_ssize_t n, samples, p0, p1      # samples n..n + samples - 1, positions p0..p1 of each


cdef inline Chunk chunk_of(const Geom* g, Py_ssize_t i, Py_ssize_t width,
                           Py_ssize_t samples) noexcept nogil:
    """Chunk i: `width` positions of one sample, or (`samples` > 1: the packed forward on small
    maps) that many whole samples (the last chunk may have fewer)."""
    cdef Chunk c
    cdef Py_ssize_t per_sample = (g.P + width - 1) // width
    if samples > 1:
        c.n = i * samples
        c.samples = min(samples, g.N - c.n)
        c.p0 = 0
        c.p1 = g.P
    else:
        c.n = i // per_sample
        c.samples = 1
        c.p0 = (i - c.n * per_sample) * width
        c.p1 = min(c.p0 + width, g.P)
    return c


cdef struct ChannelBlock:
    Py_ssize_t chunk, group, k0, k1     # channels k0..k1 of a group, for one chunk (or sample)


cdef inline ChannelBlock channel_block(const Geom* g, Py_ssize_t item, Py_ssize_t kblocks,
                                       Py_ssize_t kb, Py_ssize_t channels) noexcept nogil:
    """Work item `item` of (chunk, group, block of kb of a group's `channels`) items: forward's
    blocks of output channels, grad_input's (sample, group, block of input channels)."""
    cdef ChannelBlock b
    b.chunk = item // (g.G * kblocks)
    b.group = (item // kblocks) % g.G
    b.k0 = (item % kblocks) * kb
    b.k1 = min(b.k0 + kb, channels)
    return b


cdef inline Py_ssize_t part_position(const Geom* g, Py_ssize_t q, Py_ssize_t parts) noexcept nogil:
    """The first output position of part q of `parts`: parts split the outermost axis longer
    than 1 (im2col.py's _position_parts): a single output row's positions, a map's output rows,
    or a 3-D map's planes."""
    cdef Py_ssize_t unit = 1 if g.P == g.ow else (g.ow if g.P == g.oh * g.ow else g.oh * g.ow)
    return part_start(0, g.P // unit, q, parts) * unit
