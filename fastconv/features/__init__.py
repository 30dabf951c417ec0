"""Kernels without back-propagation: hand-designed, Gabor, random and k-means (sections 9.9-9.10).

- `gabor`: Gabor functions (eqs. 9.16-9.18), banks, the grids of figure 9.18, fitting one.
- `handmade`: figure 9.6's edge detector and its FLOP arithmetic; Sobel, Prewitt, difference of
  Gaussians, oriented edges.
- `random`: random kernels (gaussian, uniform, ternary, sparse, random Gabor).
- `kmeans`: patches, contrast normalisation, ZCA, spherical k-means, Coates et al.'s features.
- `pipeline`, `linear`: frozen conv + rectification + pooling, and the convex softmax last layer.
- `convnet`, `search`, `pretrain`: small `fastconv.nn.Sequential` networks whose first layers
  take given kernels (frozen or not), trained with `nn.fit`; the random-feature architecture
  search of Saxe et al.; greedy layer-wise pretraining with conv autoencoders.
- `cells`: simple and complex cells (section 9.10, eq. 9.15).
- `pictures`: PNG writers (matplotlib, optional).
"""
from .gabor import default_parameters, figure_9_18, fit_gabor, gabor, gabor_bank, normalize_kernels
from .handmade import (EdgeDetectorCost, difference_of_gaussians, edge_detector_cost, edge_kernel,
                       expand_channels, oriented_edges, prewitt, sobel)
from .random import DISTRIBUTIONS, random_filters
from .kmeans import ZCA, KMeansFeatures, extract_patches, normalize_patches, spherical_kmeans
from .pipeline import conv_features, grid_pool, pool, rectify
from .linear import SoftmaxRegression
from .convnet import (Abs, Architecture, convnet, fit_head, head_features, score, train_convnet,
                      trainable)
from .search import architecture_grid, architecture_search, random_feature_score
from .pretrain import ConvAutoencoder, pretrain_stack, pretrained_convnet
from .cells import (complex_cell, complex_cell_map, grating, phase_response, quadrature_pair,
                    shift_response, simple_cell, simple_cell_map)
from . import pictures

__all__ = [
    "gabor", "gabor_bank", "figure_9_18", "fit_gabor", "default_parameters", "normalize_kernels",
    "edge_kernel", "edge_detector_cost", "EdgeDetectorCost", "sobel", "prewitt",
    "difference_of_gaussians", "oriented_edges", "expand_channels",
    "random_filters", "DISTRIBUTIONS",
    "extract_patches", "normalize_patches", "ZCA", "spherical_kmeans", "KMeansFeatures",
    "conv_features", "rectify", "grid_pool", "pool", "SoftmaxRegression",
    "Architecture", "Abs", "convnet", "trainable", "head_features", "fit_head",
    "train_convnet", "score", "architecture_grid", "architecture_search",
    "random_feature_score", "ConvAutoencoder", "pretrain_stack", "pretrained_convnet",
    "grating", "quadrature_pair", "simple_cell", "complex_cell", "phase_response",
    "shift_response", "simple_cell_map", "complex_cell_map", "pictures",
]
