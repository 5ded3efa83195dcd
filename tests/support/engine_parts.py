"""Shortcuts into the engine and the parameter sources shared by tests of several packages."""

from __future__ import annotations

import yaml

from daemon.cli import build_parser, params_from_args
from tests.support.daemon import write_config


def loss_step(engine, content, style, params):
    """The engine's compiled value-and-gradient of the loss for one photo and one style image."""
    from daemon.engine.params import StyleImage
    from daemon.engine.style_targets import whole_targets

    feature_model, spec = engine.features.model_for(params)
    size = (content.shape[1], content.shape[0])
    targets = whole_targets(engine.features, feature_model, spec, content, [StyleImage(style)], size, params)
    return engine.features.value_and_grad(feature_model, spec, targets)


def config_with_style_params(tmp_path, engine: dict, style_params: dict | None = None):
    """A test config whose style set 'starry' has `style_params`."""
    path = write_config(tmp_path, engine={"backbone": "vgg16-hed", **engine})
    if style_params is not None:
        document = yaml.safe_load(path.read_text())
        document["styles"]["starry"]["params"] = style_params
        path.write_text(yaml.safe_dump(document))
    return path


def stylize_args(*options: str):
    """The parsed command line of `style-daemon stylize photo.jpg -s style.jpg -o out.jpg OPTIONS`."""
    return build_parser().parse_args(["stylize", "photo.jpg", "-s", "style.jpg", "-o", "out.jpg", *options])


def stylize_params(*options: str):
    """TransferParams from `style-daemon stylize` options."""
    return params_from_args(stylize_args(*options))
