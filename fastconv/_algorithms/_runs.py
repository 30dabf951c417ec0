"""Even runs: how blocked's paths cut a range among register tiles."""


def even_runs(n, most):
    """(start, length) of ceil(n / most) runs covering range(n), as even as possible (none for
    n = 0)."""
    count = -(-n // most)
    bounds = [i * n // count for i in range(count + 1)] if count else [0]
    return [(a, b - a) for a, b in zip(bounds, bounds[1:])]
