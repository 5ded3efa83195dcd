"""What the memory plan and the tiles need to know of a loaded backbone: its layers, pools and reach.

Read from the Keras model's layer list only (no Keras import here), once per run by the plan."""

from __future__ import annotations

import math

from daemon.engine.device_scale import feature_layers
from daemon.engine.params import TransferParams
from daemon.engine.tile_plan import Network


def network(model, params: TransferParams) -> Network:
    """The backbone as the memory estimate sees it, for the layers `params` reads."""
    deepest = deepest_layer(model, params)
    level = pooling_grid(model, params.content_layer)
    return Network(convs_per_block(model), deepest_block(params), safe_halo(model, deepest),
                   pooling_grid(model, deepest), content_floats=model.get_layer(params.content_layer).filters / level**2)


def deepest_layer(model, params: TransferParams) -> str:
    """The feature layer `params` reads that comes last in the network."""
    names = [layer.name for layer in model.layers]
    return max(feature_layers(params), key=names.index)


def deepest_block(params: TransferParams) -> int:
    """The VGG block (1..5) of the deepest layer `params` reads."""
    names = [params.content_layer, *params.style_layers]
    return max(int(n.split("_")[0].removeprefix("block")) for n in names if n.startswith("block"))


def convs_per_block(model) -> tuple[int, ...]:
    """Convolutions in each of the five VGG blocks (VGG16: 2, 2, 3, 3, 3)."""
    counts = [0] * 5
    for layer in model.layers:
        if layer.name.startswith("block") and "_conv" in layer.name:
            counts[int(layer.name[5]) - 1] += 1
    return tuple(counts)


def receptive_radius(model, deepest: str) -> int:
    """Pixels of context one output position of `deepest` reads on each side of its own."""
    radius, stride = 0, 1
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            radius += (layer.kernel_size[0] // 2) * stride * layer.dilation_rate[0]
        elif kind == "MaxPooling2D":
            radius += (layer.pool_size[0] - 1) * stride  # window reaches one input further on one side
            stride *= layer.strides[0]
        if layer.name == deepest:
            return radius
    raise ValueError(f"layer {deepest!r} not in the model")


def pooling_grid(model, deepest: str) -> int:
    """2**(pools before `deepest`): tiles must start on this grid for pooling windows to coincide."""
    grid = 1
    for layer in model.layers:
        if layer.name == deepest:
            return grid
        if type(layer).__name__ == "MaxPooling2D":
            grid *= layer.strides[0]
    raise ValueError(f"layer {deepest!r} not in the model")


def safe_halo(model, deepest: str) -> int:
    """The receptive radius rounded up to the pooling grid: the smallest halo that keeps cores exact."""
    grid = pooling_grid(model, deepest)
    return math.ceil(receptive_radius(model, deepest) / grid) * grid
