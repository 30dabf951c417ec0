"""Pictures: filter grids, feature maps and Gabor banks as PNG files (matplotlib, optional)."""
import numpy as np

__all__ = ["save_filter_grid", "save_feature_maps", "save_gabor_banks", "save_image"]


def _figure(rows, cols, tile=1.0):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"writing pictures needs matplotlib: pip install fastconv[demo] ({exc})") from None
    fig = Figure(figsize=(max(cols * tile, 1.0), max(rows * tile, 1.0)))
    FigureCanvasAgg(fig)
    return fig


def _show(ax, a, cmap="gray", symmetric=False):
    """One tile: grey, symmetric about 0 when `symmetric`; an (h, w, 3) array in colour."""
    if a.ndim == 3:
        ax.imshow(a, interpolation="nearest")
    elif symmetric:
        m = float(np.max(np.abs(a))) or 1.0
        ax.imshow(a, cmap=cmap, vmin=-m, vmax=m, interpolation="nearest")
    else:
        ax.imshow(a, cmap=cmap, interpolation="nearest")
    ax.set_axis_off()
    return ax


def _finish(fig, path, title=None):
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=80)
    return str(path)


def _tiles(arrays, path, cols, title, tile, cmap="gray", symmetric=False):
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    if not arrays:
        raise ValueError("nothing to draw: got an empty set of images")
    if any(a.ndim != 2 and a.shape[2:] != (3,) for a in arrays):
        shapes = sorted({a.shape for a in arrays})
        raise ValueError(f"each tile must be 2-D (or h x w x 3 in colour), got shapes {shapes}")
    cols = min(cols or int(np.ceil(np.sqrt(len(arrays)))), len(arrays))
    rows = int(np.ceil(len(arrays) / cols))
    fig = _figure(rows, cols, tile)
    for i, a in enumerate(arrays):
        _show(fig.add_subplot(rows, cols, i + 1), a, cmap, symmetric)
    return _finish(fig, path, title)


def save_filter_grid(path, kernels, *, cols=None, title=None, channel=None):
    """Each kernel of a (K, C, h, w) bank as one tile (grey, symmetric about 0). For C > 1 the
    channels are averaged unless `channel` picks one; C = 3 with channel="rgb" shows colour."""
    k = np.asarray(kernels, dtype=np.float64)
    if k.ndim != 4:
        raise ValueError(f"kernels must have shape (K, C, h, w), got {k.shape}")
    if channel == "rgb" and k.shape[1] == 3:
        rgb = [np.moveaxis(x, 0, -1) for x in k]
        return _tiles([(x - x.min()) / (np.ptp(x) or 1.0) for x in rgb], path, cols, title, 0.8)
    tiles = [x[channel] if isinstance(channel, int) else x.mean(axis=0) for x in k]
    return _tiles(tiles, path, cols, title, 0.8, "gray", True)


def save_feature_maps(path, maps, *, cols=None, title=None):
    """Each channel of one (C, H, W) feature map (or of (1, C, H, W)) as a tile."""
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim == 4 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 3:
        raise ValueError(f"maps must have shape (C, H, W) or (1, C, H, W), got {m.shape}")
    return _tiles(list(m), path, cols, title, 2.0)


def save_gabor_banks(path, banks, *, grid=None):
    """The three grids of figure 9.18 side by side: `banks` as returned by `figure_9_18`."""
    names = list(banks)
    n = len(banks[names[0]])
    grid = grid or int(round(np.sqrt(n)))
    fig = _figure(grid, grid * len(names) + len(names) - 1, 0.6)
    width = grid * len(names) + len(names) - 1
    for b, name in enumerate(names):
        for i, k in enumerate(np.asarray(banks[name])):
            r, c = divmod(i, grid)
            ax = _show(fig.add_subplot(grid, width, r * width + b * (grid + 1) + c + 1), k[0],
                       symmetric=True)
            if i == grid // 2:
                ax.set_title(name, fontsize=8)
    return _finish(fig, path)


def save_image(path, image, *, title=None, cmap="gray"):
    """One 2-D array as a picture (e.g. an edge map)."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {a.shape}")
    h, w = a.shape
    fig = _figure(1, 1, 1.0)
    fig.set_size_inches(max(w / 80, 1.0), max(h / 80, 1.0))
    ax = _show(fig.add_axes([0, 0, 1, 1]), a, cmap)
    if title:
        ax.set_title(title)
    return _finish(fig, path)
