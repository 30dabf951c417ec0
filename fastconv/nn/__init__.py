"""Layers, losses, optimizers and training (`fastconv.nn`): NumPy arrays in and out.

No autograd graph: each layer has ``forward(x)`` and ``backward(gy) -> gx`` (accumulating its
parameters' gradients into ``.grads``); containers chain them. Convolution layers run on the
three operations of section 9.5 (``fastconv.conv``, ``conv_grad_input``, ``conv_grad_kernel``).
"""
from .module import Module, manual_seed
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .activation import (Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, log_softmax, sigmoid,
                         softmax)
from .linear import Dropout, Flatten, Linear
from .norm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .container import Parallel, Residual, Sequential
from .pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool1d,
                      AdaptiveMaxPool2d, AdaptiveMaxPool3d, AvgPool1d, AvgPool2d, AvgPool3d,
                      ChannelPool, GlobalAvgPool, GlobalMaxPool, LPPool1d, LPPool2d, LPPool3d,
                      MaxPool1d, MaxPool2d, MaxPool3d, Maxout, WeightedAvgPool1d,
                      WeightedAvgPool2d, WeightedAvgPool3d)
from .local import (LocallyConnected1d, LocallyConnected2d, LocallyConnected3d, TiledConv1d,
                    TiledConv2d, TiledConv3d)
from .loss import CrossEntropyLoss, Loss, MSELoss
from .optim import SGD, Adam, AdamW, Optimizer
from .train import (History, accuracy, evaluate, fit, format_layer_report, layer_report, predict,
                    train_step)
from .serialize import LoadError, architecture, build, load, save
from .gradcheck import gradcheck

__all__ = [
    "Module", "manual_seed",
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "LocallyConnected1d", "LocallyConnected2d", "LocallyConnected3d",
    "TiledConv1d", "TiledConv2d", "TiledConv3d",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d", "WeightedAvgPool1d", "WeightedAvgPool2d",
    "WeightedAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "GlobalAvgPool",
    "GlobalMaxPool", "ChannelPool", "Maxout",
    "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softmax", "Identity", "softmax", "log_softmax",
    "sigmoid", "Linear", "Flatten", "Dropout", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
    "Sequential", "Parallel", "Residual",
    "Loss", "CrossEntropyLoss", "MSELoss", "Optimizer", "SGD", "Adam", "AdamW",
    "fit", "evaluate", "predict", "accuracy", "train_step", "History", "layer_report",
    "format_layer_report", "save", "load", "LoadError", "architecture", "build", "gradcheck",
]
