"""The config's `engine` section and a style set's `params`, both derived from the one engine schema.

Every field comes from TransferParams and EngineChoices (daemon/engine/params.py) with its type, constraints
and description; nothing is typed again here. The config reads numbers strictly (YAML's true or "5" where a
number is meant is refused, not read as 1 or 5).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, create_model

from daemon.engine.params import (EngineChoices, TransferParams, chosen_style_weight, engine_fields,
                                  transfer_fields)

_SECTION = ConfigDict(extra="forbid", frozen=True, strict=True)
_CHOICES = tuple(EngineChoices.__pydantic_fields__)


class _EngineSection(BaseModel):
    """What the engine section and the style-set overrides share: turning them into TransferParams."""

    model_config = _SECTION

    def _levels(self) -> tuple[float | str | None, float | None]:
        return getattr(self, "strength", None), getattr(self, "style_weight", None)

    def transfer_params(self, overrides: "_EngineSection | None" = None) -> TransferParams:
        """TransferParams from these settings with a style set's overrides applied.

        A style set's strength or style_weight wins over the engine's; within one, style_weight wins."""
        levels = [self, *([overrides] if overrides is not None else [])]
        values: dict[str, Any] = {}
        for level in levels:
            values.update({name: value for name in transfer_fields()
                           if (value := getattr(level, name)) is not None})
        style_weight = chosen_style_weight([level._levels() for level in levels])
        if style_weight is not None:
            values["style_weight"] = style_weight
        return TransferParams(**values)


def _annotation(name: str, info: Any) -> Any:
    """The field's type with every constraint of the schema (a path is read from a string: not strict)."""
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return Annotated[annotation, Strict(False)] if name == "weights" else annotation


def _engine_field(name: str, info: Any) -> tuple[Any, Any]:
    """(type, Field) of one `engine` key: the schema's default, except style_weight (unset: from strength)."""
    if name == "style_weight":
        return _annotation(name, info) | None, Field(None, description=info.description, examples=[info.default])
    if info.default_factory is not None:
        return _annotation(name, info), Field(default_factory=info.default_factory, description=info.description)
    return _annotation(name, info), Field(info.default, description=info.description, examples=info.examples)


def _override_field(name: str, info: Any) -> tuple[Any, Any]:
    """(type, Field) of one style-set override: optional, unset means the engine section's value."""
    return _annotation(name, info) | None, Field(None, description=info.description)


_OVERRIDABLE = {name: info for name, info in engine_fields().items() if name not in ("backbone", "weights")}

EngineSettings = create_model(
    "EngineSettings", __base__=_EngineSection, __module__=__name__,
    __doc__="Engine parameters (see TransferParams) plus the backbone, its weights and the strength.",
    **{name: _engine_field(name, info) for name, info in engine_fields().items()})

StyleOverrides = create_model(
    "StyleOverrides", __base__=_EngineSection, __module__=__name__,
    __doc__="A style set's engine parameters: any engine parameter but the backbone; unset ones come from `engine`.",
    **{name: _override_field(name, info) for name, info in _OVERRIDABLE.items()})


def effective_engine(settings: "EngineSettings") -> dict[str, Any]:
    """The engine section as check-config prints it: every parameter with the value a job gets (style_weight
    computed from strength when unset), as plain YAML data; weights only when set."""
    params = settings.transfer_params()
    shown = {name: getattr(settings, name) for name in _CHOICES}
    shown.update({name: getattr(params, name) for name in transfer_fields()})
    if shown["weights"] is None:
        del shown["weights"]
    else:
        shown["weights"] = str(Path(shown["weights"]))
    return shown
