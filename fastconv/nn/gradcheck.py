"""Finite-difference checks of a layer's backward (use float64 layers: ``module.to("float64")``)."""
import numpy as np


def _projected(module, x, g):
    value = float(np.sum(module(x) * g))
    module.clear_cache()
    return value


def gradcheck(module, x, seed=0, n_coords=12, eps=1e-6, rtol=1e-6, atol=1e-9):
    """Compare backward with central differences of L = <module(x), g> (g random) for the input
    and every parameter, at up to `n_coords` random coordinates of each. Raises AssertionError
    naming the first mismatch; returns the number of coordinates checked."""
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)
    module.train()
    module.zero_grad()
    y = module(x)
    g = rng.standard_normal(y.shape)
    gx = module.backward(g)
    module.clear_cache()
    if gx.shape != x.shape:
        raise AssertionError(f"backward returned shape {gx.shape} for an input of shape {x.shape}")
    targets = [("input", x, np.asarray(gx))]
    targets += [(name, p, grad.copy()) for (name, p), grad
                in zip(module.named_parameters(), module.gradients())]
    checked = 0
    for name, array, grad in targets:
        flat = array.reshape(-1)
        for i in rng.choice(flat.size, size=min(n_coords, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            plus = _projected(module, x, g)
            flat[i] = old - eps
            minus = _projected(module, x, g)
            flat[i] = old
            numeric = (plus - minus) / (2 * eps)
            got = float(grad.reshape(-1)[i])
            if abs(numeric - got) > rtol * max(abs(numeric), abs(got), 1.0) + atol:
                raise AssertionError(f"{type(module).__name__}: d/d {name}[{i}] is {got!r} by "
                                     f"backward, {numeric!r} by finite differences")
            checked += 1
    return checked
