"""How far a result's large-scale light-and-dark layout moved from the photo's: the subject check.

A subject stays recognisable while its broad shapes keep their tones. The networks' content
distances do not say that across pairs (on the 256 px grid, the drowned astronaut under Shipwreck had
a lower VGG19 content distance, 0.63, than a clearly recognisable Chelsea under The Starry Night,
0.92), so the subject check is made without them: 1 - the Pearson correlation of the two images'
luminance, each averaged down to SIDE px on its long side.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIDE = 32


def structure_distance(result: np.ndarray, photo: np.ndarray, side: int = SIDE) -> float:
    """1 - correlation of the blurred luminances of `result` and `photo` (HxWx3, 0..255): 0 same layout."""
    a, b = _luminance(result, side), _luminance(photo, side)
    if a.shape != b.shape:
        b = np.asarray(Image.fromarray(b).resize((a.shape[1], a.shape[0]), Image.BOX))
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return 1.0 - float(np.sum(a * b)) / norm if norm > 0 else 1.0


def _luminance(rgb: np.ndarray, side: int) -> np.ndarray:
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).convert("L")
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(size, Image.BOX), dtype=np.float32)
