"""Pair-adaptive strength: less style weight for a photo that starts far from the painting's statistics.

One fixed style weight does not suit every pair. The pairs whose subject drowns are those whose photo
starts far from the painting in style statistics (measured, VGG19, 256 px: the photo's own relative
style error, the engine's style term, is 1.56-3.28 for the four pairs that drowned or darkened in the
grid and 0.50-1.13 for the other 16): there the style term outweighs the content term from the first
iteration and the optimiser trades the subject away. So the style weight is divided by
error / REFERENCE_ERROR above the reference, in quarter-octave steps: the style term then starts
about as strong as on an ordinary pair. No Keras here: unit-testable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REFERENCE_SIDE = 256  # px: the photo and the painting are compared at this long side (the photo's, if smaller)
REFERENCE_ERROR = 1.15  # the photo's own style error (a mean over the style layers) above which it is damped
# By eye, 256 px: astronaut/Shipwreck keeps its subject at weight 4.4 (11.9 / 2.7), not at 11.9.
EXPONENT = 1.0
STEPS_PER_OCTAVE = 4  # the factor is rounded to 2^(-k/4): few distinct loss weights, few compiled functions


@dataclass(frozen=True)
class Adaptation:
    """How the style weight was adapted to a pair: the photo's starting error and the factor applied."""

    start_style_error: float  # the photo's own relative style error (the style term), at REFERENCE_SIDE
    factor: float  # style weight multiplier, 1 when not damped
    style_weight: float  # the weight the optimisation used


def damping(start_style_error: float) -> float:
    """The style weight factor for a photo whose own relative style error is `start_style_error`."""
    if not math.isfinite(start_style_error) or start_style_error <= REFERENCE_ERROR:
        return 1.0
    raw = (REFERENCE_ERROR / start_style_error) ** EXPONENT
    steps = round(-math.log2(raw) * STEPS_PER_OCTAVE)
    return 2.0 ** (-steps / STEPS_PER_OCTAVE)


def adapt(style_weight: float, start_style_error: float) -> Adaptation:
    """The adaptation of `style_weight` for a photo starting at `start_style_error`."""
    factor = damping(start_style_error)
    return Adaptation(start_style_error, factor, round(style_weight * factor, 4))
