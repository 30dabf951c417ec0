"""Simple and complex cells of V1 (section 9.10, eq. 9.15).

A simple cell responds linearly (then perhaps rectified) to the image inside its receptive field,
weighted by a Gabor function: ``s(I) = sum_{x, y} w(x, y) I(x, y)``. A complex cell combines a
quadrature pair of simple cells, Gabor functions with phases phi and phi + pi/2:
``c(I) = sqrt(s_0(I)^2 + s_1(I)^2)`` (eq. 9.15). The pair acts like the cosine and sine parts of
a local Fourier coefficient, so its energy ignores the grating's phase, and hence small shifts
of the image, while each simple cell follows the phase: the functions below show it numerically.
"""
import math

import numpy as np

from .. import _functional
from .._validate import float_array, positive_int, real_number
from ._checks import kernel_size
from .gabor import default_parameters, gabor

__all__ = ["grating", "quadrature_pair", "simple_cell", "complex_cell", "phase_response",
           "shift_response", "variation", "simple_cell_map", "complex_cell_map"]


def grating(size, f, tau=0.0, phase=0.0, contrast=1.0):
    """A sinusoidal grating contrast * cos(f x' + phase), x' = x cos(tau) + y sin(tau), on the
    same centred pixel grid as `gabor`."""
    h, w = kernel_size(size)
    f = real_number(f, "f")
    tau, phase = real_number(tau, "tau"), real_number(phase, "phase")
    contrast = real_number(contrast, "contrast")
    y, x = np.meshgrid(np.arange(h) - (h - 1) / 2.0, np.arange(w) - (w - 1) / 2.0, indexing="ij")
    return contrast * np.cos(f * (x * math.cos(tau) + y * math.sin(tau)) + phase)


def quadrature_pair(size, **params):
    """Two Gabor kernels (eq. 9.16) equal but for their phase: phi and phi + pi/2. (2, h, w)."""
    phi = params.pop("phi", 0.0)
    phi = 0.0 if phi is None else phi
    return np.stack([gabor(size, phi=phi, **params), gabor(size, phi=phi + math.pi / 2, **params)])


def _receptive(image, w, name="image"):
    image = float_array(image, name)
    w = float_array(w, "w", ndim=2)
    if image.shape[-2:] != w.shape:
        raise ValueError(f"{name} must end with the receptive field's shape {w.shape}, "
                         f"got {image.shape}")
    return image


def simple_cell(image, w, rectify=False):
    """s(I) = sum w(x, y) I(x, y) over the receptive field; `image` is (..., h, w), one response
    per leading index; `rectify=True` gives max(s, 0) (a firing rate cannot be negative)."""
    image = _receptive(image, w)
    s = np.einsum("...ij,ij->...", image, np.asarray(w, np.float64))
    return np.maximum(s, 0.0) if rectify else s


def complex_cell(image, w0, w1):
    """Eq. 9.15: c(I) = sqrt(s_0(I)^2 + s_1(I)^2) for the quadrature pair (w0, w1)."""
    w0, w1 = np.asarray(w0), np.asarray(w1)
    if w0.shape != w1.shape:
        raise ValueError(f"w0 and w1 must have the same shape, got {w0.shape} and {w1.shape}")
    return np.hypot(simple_cell(image, w0), simple_cell(image, w1))


def variation(responses):
    """(max - min) / max of |responses|: 0 for a perfectly invariant cell."""
    r = np.abs(np.asarray(responses, dtype=np.float64))
    top = float(r.max())
    return 0.0 if top == 0 else float((r.max() - r.min()) / top)


def _cell_parameters(size, params):
    p = default_parameters(size)
    p.update({k: v for k, v in params.items() if v is not None})
    return p


def phase_response(size=21, n_phases=16, **params):
    """Responses of a simple cell and of a complex cell to gratings matched to the cell's
    frequency and orientation, at `n_phases` phases in [0, 2 pi). Returns a dict with "phases",
    "simple" (the phi cell, unrectified), "complex", and their `variation`s."""
    n_phases = positive_int(n_phases, "n_phases")
    p = _cell_parameters(size, params)
    w0, w1 = quadrature_pair(size, **p)
    phases = np.linspace(0.0, 2 * math.pi, n_phases, endpoint=False)
    stimuli = np.stack([grating(size, p["f"], p["tau"], ph) for ph in phases])
    simple = simple_cell(stimuli, w0)
    cplx = complex_cell(stimuli, w0, w1)
    return {"phases": phases, "simple": simple, "complex": cplx,
            "simple_variation": variation(simple), "complex_variation": variation(cplx)}


def shift_response(size=21, shifts=(0, 1, 2, 3), stimulus="grating", **params):
    """Responses to a stimulus moved by a few pixels along the cell's preferred direction:
    windows cut at offsets `shifts` from one larger image. stimulus: "grating" (matched to the
    cell) or "edge" (a step edge across the preferred direction). Returns a dict with "shifts",
    "simple", "complex" and their `variation`s."""
    if stimulus not in ("grating", "edge"):
        raise ValueError(f"stimulus must be 'grating' or 'edge', got {stimulus!r}")
    h, w = kernel_size(size)
    p = _cell_parameters((h, w), params)
    shifts = [int(s) for s in np.atleast_1d(shifts)]
    if not shifts or min(shifts) < 0:
        raise ValueError(f"shifts must be non-negative pixel offsets, got {shifts}")
    pad = max(shifts)
    big = (h + 2 * pad, w + 2 * pad)
    if stimulus == "grating":
        scene = grating(big, p["f"], p["tau"])
    else:
        yy, xx = np.meshgrid(np.arange(big[0]) - (big[0] - 1) / 2.0,
                             np.arange(big[1]) - (big[1] - 1) / 2.0, indexing="ij")
        scene = (xx * math.cos(p["tau"]) + yy * math.sin(p["tau"]) > 0).astype(np.float64)
    dy, dx = math.sin(p["tau"]), math.cos(p["tau"])
    windows = []
    for s in shifts:
        r0 = pad + int(round(s * dy))
        c0 = pad + int(round(s * dx))
        windows.append(scene[r0:r0 + h, c0:c0 + w])
    windows = np.stack(windows)
    w0, w1 = quadrature_pair((h, w), **p)
    simple = simple_cell(windows, w0)
    cplx = complex_cell(windows, w0, w1)
    return {"shifts": np.array(shifts), "simple": simple, "complex": cplx,
            "simple_variation": variation(simple), "complex_variation": variation(cplx)}


def simple_cell_map(images, bank, rectify=False, padding="same"):
    """A population of simple cells tiling the image: conv with the Gabor `bank` (K, C, h, w)."""
    s = _functional.conv(images, bank, padding=padding)
    return np.maximum(s, 0) if rectify else s


def complex_cell_map(images, bank0, bank1, padding="same"):
    """A population of complex cells: sqrt(conv(I, bank0)^2 + conv(I, bank1)^2), the banks being
    quadrature pairs kernel by kernel (e.g. `gabor_bank(..., phases=(0,))` and
    `phases=(pi / 2,)`)."""
    bank0, bank1 = np.asarray(bank0), np.asarray(bank1)
    if bank0.shape != bank1.shape:
        raise ValueError(f"bank0 and bank1 must have the same shape, got {bank0.shape} and "
                         f"{bank1.shape}")
    return np.hypot(_functional.conv(images, bank0, padding=padding),
                    _functional.conv(images, bank1, padding=padding))
