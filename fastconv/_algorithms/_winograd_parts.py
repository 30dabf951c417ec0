"""The partial sums of Winograd's kernel gradient (2-D and 1-D): how many, fixed by the problem."""
MIN_PARTS, MAX_PARTS = 4, 16    # partial sums of the kernel gradient (powers of two)
FLOPS_PER_PART_ELEMENT = 250    # GEMM work per element of a partial sum, at the least


def parts(gemm_flops, u_elements):
    """Partial sums of the kernel gradient: a power of two (so 1, 2, 4 ... threads share them
    evenly), more for more work per element of a partial sum (each costs a store and an add)."""
    count = MIN_PARTS
    while count < MAX_PARTS and gemm_flops >= 2 * count * u_elements * FLOPS_PER_PART_ELEMENT:
        count *= 2
    return count
