"""Gabor functions, eqs. 9.16-9.18, and banks of them (figure 9.18).

    w(x, y) = alpha exp(-beta_x x'^2 - beta_y y'^2) cos(f x' + phi)
    x' =  (x - x0) cos(tau) + (y - y0) sin(tau)
    y' = -(x - x0) sin(tau) + (y - y0) cos(tau)

Coordinates are in pixels, measured from the centre of the kernel: the kernel array is indexed
``[row, column]``, column ``j`` is ``x = j - (w - 1) / 2`` and row ``i`` is ``y = i - (h - 1) / 2``
(so y grows downwards, as in an image). ``f`` is an angular frequency in radians per pixel (the
wavelength is ``2 pi / f``), ``tau`` the orientation in radians: the cosine oscillates along the
direction ``(cos tau, sin tau)``, so ``tau = 0`` gives vertical stripes (a vertical-edge detector).
"""
import math

import numpy as np

from .._validate import positive_int, real_number
from ._checks import kernel_size

__all__ = ["gabor", "gabor_bank", "figure_9_18", "default_parameters", "normalize_kernels",
           "fit_gabor"]


def default_parameters(size):
    """Parameters that fit a kernel of `size`: sigma = min(h, w) / 5 (beta = 1 / (2 sigma^2)),
    wavelength = min(h, w) / 2 (so about two and a half periods fit in the window)."""
    h, w = kernel_size(size)
    sigma = min(h, w) / 5.0
    beta = 1.0 / (2.0 * sigma * sigma)
    return {"alpha": 1.0, "beta_x": beta, "beta_y": beta, "f": 2 * math.pi / (min(h, w) / 2.0),
            "phi": 0.0, "x0": 0.0, "y0": 0.0, "tau": 0.0}


def _grid(h, w):
    y = np.arange(h, dtype=np.float64) - (h - 1) / 2.0
    x = np.arange(w, dtype=np.float64) - (w - 1) / 2.0
    return np.meshgrid(y, x, indexing="ij")


def gabor(size, *, alpha=None, beta_x=None, beta_y=None, f=None, phi=None, x0=None, y0=None,
          tau=None, dtype=np.float64):
    """The Gabor function of eq. 9.16 sampled on a `size` (int or (h, w)) pixel grid.

    Unspecified parameters take `default_parameters(size)`. Returns an (h, w) array.
    """
    params = default_parameters(size)
    given = {"alpha": alpha, "beta_x": beta_x, "beta_y": beta_y, "f": f, "phi": phi, "x0": x0,
             "y0": y0, "tau": tau}
    for name, value in given.items():
        if value is not None:
            params[name] = real_number(value, name, non_negative=name.startswith("beta"))
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    h, w = kernel_size(size)
    y, x = _grid(h, w)
    return _evaluate(x, y, **params).astype(dtype, copy=False)


def _evaluate(x, y, alpha, beta_x, beta_y, f, phi, x0, y0, tau):
    c, s = math.cos(tau), math.sin(tau)
    xr = (x - x0) * c + (y - y0) * s          # eq. 9.17
    yr = -(x - x0) * s + (y - y0) * c         # eq. 9.18
    return alpha * np.exp(-beta_x * xr * xr - beta_y * yr * yr) * np.cos(f * xr + phi)


def normalize_kernels(bank, zero_mean=True):
    """Each kernel (over its channels and pixels) minus its mean, divided by its L2 norm."""
    bank = np.array(bank, dtype=np.float64)
    flat = bank.reshape(bank.shape[0], -1)
    if zero_mean:
        flat -= flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    flat /= np.where(norms > 0, norms, 1.0)
    return flat.reshape(bank.shape)


def _angles(orientations):
    if isinstance(orientations, (int, np.integer)) and not isinstance(orientations, bool):
        n = positive_int(orientations, "orientations")
        return [math.pi * k / n for k in range(n)]
    values = _floats(orientations, "orientations")
    return values


def _floats(values, name, positive=False):
    if np.ndim(values) == 0:
        values = [values]
    out = [real_number(v, name, positive=positive) for v in values]
    if not out:
        raise ValueError(f"{name} must not be empty")
    return out


def gabor_bank(size, orientations=8, frequencies=None, phases=(0.0, math.pi / 2), scales=None, *,
               aspect=1.0, normalize=True, dtype=np.float64, return_params=False):
    """A bank of Gabor kernels, shape (K, 1, h, w), for `fastconv.conv`.

    orientations: a count n (angles k pi / n) or the angles tau themselves, in radians.
    frequencies:  angular frequencies f (radians per pixel); default: one, `default_parameters`.
    phases:       phase offsets phi; (0, pi/2) gives quadrature pairs (section 9.10).
    scales:       Gaussian widths sigma in pixels along x' (beta_x = 1 / (2 sigma^2)); along y'
                  the width is sigma / aspect. Default: sigma = 0.56 * wavelength for each
                  frequency (about one octave of bandwidth), one scale per frequency.
    The kernels are ordered orientation-major, then frequency, then scale, then phase.
    `normalize=True` makes each kernel zero-mean with unit L2 norm.
    With `return_params=True`, also returns the list of parameter dicts, one per kernel.
    """
    h, w = kernel_size(size)
    taus = _angles(orientations)
    freqs = _floats(frequencies, "frequencies", positive=True) if frequencies is not None \
        else [default_parameters((h, w))["f"]]
    phis = _floats(phases, "phases")
    aspect = real_number(aspect, "aspect", positive=True)
    if scales is None:
        pairs = [(f, 0.56 * 2 * math.pi / f) for f in freqs]
    else:
        sigmas = _floats(scales, "scales", positive=True)
        pairs = [(f, s) for f in freqs for s in sigmas]
    y, x = _grid(h, w)
    kernels, params = [], []
    for tau in taus:
        for f, sigma in pairs:
            beta_x = 1.0 / (2 * sigma * sigma)
            for phi in phis:
                p = {"alpha": 1.0, "beta_x": beta_x, "beta_y": beta_x * aspect * aspect, "f": f,
                     "phi": phi, "x0": 0.0, "y0": 0.0, "tau": tau}
                kernels.append(_evaluate(x, y, **p))
                params.append(p)
    bank = np.stack(kernels)[:, None]
    if normalize:
        bank = normalize_kernels(bank)
    bank = bank.astype(dtype, copy=False)
    return (bank, params) if return_params else bank


def figure_9_18(size=15, grid=5, dtype=np.float64):
    """The three grids of figure 9.18, each a (grid * grid, 1, h, w) bank in row-major grid order.

    "orientation": x0, y0 proportional to the tile's position in the grid, tau pointing away from
                   the grid's centre (each Gabor is sensitive to the direction radiating outwards);
    "scale":       sigma_x (width) grows left to right, sigma_y (height) grows top to bottom;
    "phase":       f grows top to bottom, phi grows left to right.
    Returns a dict of the three banks (not normalised: the raw eq. 9.16 with alpha = 1).
    """
    h, w = kernel_size(size)
    grid = positive_int(grid, "grid")
    base = default_parameters((h, w))
    centre = (grid - 1) / 2.0
    offsets = [(r - centre, c - centre) for r in range(grid) for c in range(grid)]
    shift = min(h, w) / (2.0 * grid + 2)                  # keep the centre within the window
    sigmas = np.linspace(min(h, w) / 12.0, min(h, w) / 4.0, grid)
    freqs = np.linspace(base["f"] / 2, base["f"] * 1.5, grid)
    phis = np.linspace(0.0, 2 * math.pi, grid, endpoint=False)
    y, x = _grid(h, w)
    banks = {"orientation": [], "scale": [], "phase": []}
    for (dr, dc) in offsets:
        p = dict(base, x0=dc * shift, y0=dr * shift,
                 tau=math.atan2(dr, dc) if (dr or dc) else 0.0)
        banks["orientation"].append(_evaluate(x, y, **p))
    for r in range(grid):
        for c in range(grid):
            p = dict(base, beta_x=1 / (2 * sigmas[c] ** 2), beta_y=1 / (2 * sigmas[r] ** 2),
                     f=base["f"] * 0.75)
            banks["scale"].append(_evaluate(x, y, **p))
    for r in range(grid):
        for c in range(grid):
            banks["phase"].append(_evaluate(x, y, **dict(base, f=freqs[r], phi=phis[c])))
    return {name: np.stack(k)[:, None].astype(dtype) for name, k in banks.items()}


def _fit_grid(h, w):
    """Candidate (tau, f, beta_x, beta_y, x0, y0) for the coarse search of `fit_gabor`."""
    m = min(h, w)
    taus = np.linspace(0, math.pi, 12, endpoint=False)
    freqs = 2 * math.pi / np.geomspace(2.0, 2.0 * m, 7)
    sigmas = m * np.array([0.12, 0.22, 0.4])
    aspects = (1.0, 2.0)
    centres = (np.array([-0.2, 0.0, 0.2]) * w, np.array([-0.2, 0.0, 0.2]) * h)
    grid = np.array(np.meshgrid(taus, freqs, sigmas, aspects, centres[0], centres[1],
                                indexing="ij")).reshape(6, -1)
    tau, f, sigma, aspect, x0, y0 = grid
    beta_x = 1 / (2 * sigma ** 2)
    return tau, f, beta_x, beta_x * aspect ** 2, x0, y0


def fit_gabor(kernel, refine=True):
    """The Gabor function (eq. 9.16) closest to a 2-D `kernel` in least squares, and how close.

    A coarse search over orientation, frequency, envelope and centre (amplitude and phase solved
    exactly for each candidate: alpha cos(f x' + phi) = a cos(f x') + b sin(f x') is linear in
    a, b), then `scipy.optimize.least_squares` on all eight parameters from the best candidate.
    Returns (params, r2) with r2 = 1 - residual sum of squares / total sum of squares about the
    mean (1 is a perfect fit).
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or min(k.shape) < 2:
        raise ValueError(f"kernel must be a 2-D array of at least 2x2, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("kernel must be finite")
    h, w = k.shape
    y, x = _grid(h, w)
    x, y, target = x.ravel(), y.ravel(), k.ravel()
    total = float(np.sum((target - target.mean()) ** 2))
    if total == 0:
        raise ValueError("kernel is constant: no Gabor function to fit")
    tau, f, bx, by, x0, y0 = (v[:, None] for v in _fit_grid(h, w))
    dx, dy = x[None] - x0, y[None] - y0
    xr = dx * np.cos(tau) + dy * np.sin(tau)
    yr = -dx * np.sin(tau) + dy * np.cos(tau)
    env = np.exp(-bx * xr * xr - by * yr * yr)
    C, S = env * np.cos(f * xr), env * np.sin(f * xr)
    ridge = 1e-6 * ((C * C).sum(1) + (S * S).sum(1))      # degenerate bases (cos f x' = 0
    cc, ss, cs = (C * C).sum(1) + ridge, (S * S).sum(1) + ridge, (C * S).sum(1)   # on the grid)
    ck, sk = C @ target, S @ target
    det = np.maximum(cc * ss - cs * cs, 1e-300)
    a, b = (ss * ck - cs * sk) / det, (cc * sk - cs * ck) / det
    best = int(np.argmax(a * ck + b * sk))            # largest explained sum of squares
    p0 = np.array([math.hypot(a[best], b[best]), math.log(bx[best, 0]), math.log(by[best, 0]),
                   f[best, 0], math.atan2(-b[best], a[best]), x0[best, 0], y0[best, 0],
                   tau[best, 0]])

    def model(p):
        return _evaluate(x, y, p[0], math.exp(p[1]), math.exp(p[2]), p[3], p[4], p[5], p[6], p[7])

    if refine:
        from scipy.optimize import least_squares
        p0 = least_squares(lambda p: model(p) - target, p0, max_nfev=200).x
    residual = float(np.sum((model(p0) - target) ** 2))
    params = {"alpha": float(p0[0]), "beta_x": math.exp(p0[1]), "beta_y": math.exp(p0[2]),
              "f": float(p0[3]), "phi": float(p0[4]), "x0": float(p0[5]), "y0": float(p0[6]),
              "tau": float(p0[7])}
    return params, 1.0 - residual / total
