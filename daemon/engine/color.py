"""Colour preservation (Gatys et al. 2016): luminance-only transfer and colour histogram matching."""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 RGB <-> YIQ.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float64
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def keep_content_colors(result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The result's luminance with the content's chrominance (both HxWx3, 0..255, same size)."""
    yiq_result = result.astype(np.float64) @ _RGB_TO_YIQ.T
    yiq_content = content.astype(np.float64) @ _RGB_TO_YIQ.T
    merged = np.concatenate([yiq_result[..., :1], yiq_content[..., 1:]], axis=-1)
    return np.clip(merged @ _YIQ_TO_RGB.T, 0, 255).astype(np.float32)


def match_color_histogram(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Recolour `style` so its colour mean and covariance equal the content's (linear, Cholesky)."""
    s = style.reshape(-1, 3).astype(np.float64)
    c = content.reshape(-1, 3).astype(np.float64)
    mu_s, mu_c = s.mean(axis=0), c.mean(axis=0)
    eye = np.eye(3) * 1e-3
    chol_s = np.linalg.cholesky(np.cov(s, rowvar=False) + eye)
    chol_c = np.linalg.cholesky(np.cov(c, rowvar=False) + eye)
    transform = chol_c @ np.linalg.inv(chol_s)
    out = (s - mu_s) @ transform.T + mu_c
    return np.clip(out, 0, 255).reshape(style.shape).astype(np.float32)
