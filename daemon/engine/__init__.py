"""Neural style transfer (Gatys et al. 2015) on Keras 3.

Only this package imports keras, and only inside functions, so the rest of
style-daemon starts fast and is testable without a deep-learning stack.
"""

from daemon.engine.params import (
    LossRecord,
    Progress,
    StyleImage,
    TransferParams,
    TransferResult,
)

__all__ = ["LossRecord", "Progress", "StyleImage", "TransferParams", "TransferResult"]
