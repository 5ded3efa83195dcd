"""ICC matrix/TRC ("matrix-shaper") RGB profiles: made from a space's primaries and curve, and read back.

Photos name their colour space without a profile too (EXIF's ColorSpace, a HEIF's NCLX box); for those the
profile is made here from the published primaries, so LittleCMS converts them like any tagged photo and the
result can carry it. Every profile phones, cameras and editors embed for RGB photos (sRGB, Display P3, Adobe
RGB, ProPhoto, Rec. 2020) is of this kind: three colorants and three tone curves (ICC.1:2022 section F.3).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import numpy as np

# The PCS illuminant (ICC: D50) and D65, the white of every space built here.
D50 = np.array([0.9642, 1.0, 0.8249])
D65_XY = (0.3127, 0.3290)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


@dataclass(frozen=True)
class ToneCurve:
    """An ICC parametric curve (ICC.1 10.18): 'gamma' (Y = X^g) or 'srgb' (a gamma with a linear toe)."""

    gamma: float
    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0  # below d: Y = c*X; from d: Y = (a*X + b)^gamma


SRGB_CURVE = ToneCurve(2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
ADOBE_CURVE = ToneCurve(563 / 256)  # Adobe RGB (1998): 2.19921875, exactly representable in the profile


@dataclass(frozen=True)
class Space:
    """An RGB colour space: its name, its primaries' chromaticities (xy) and its curve; white D65."""

    name: str
    primaries: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    curve: ToneCurve


SRGB = Space("sRGB IEC61966-2.1", ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), SRGB_CURVE)
DISPLAY_P3 = Space("Display P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), SRGB_CURVE)
ADOBE_RGB = Space("Compatible with Adobe RGB (1998)", ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), ADOBE_CURVE)
# Rec. 2020 primaries; its camera curve is close to sRGB's in the tones that matter for a still photo.
REC2020 = Space("Rec. 2020", ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046)), SRGB_CURVE)


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def adaptation_to_d50() -> np.ndarray:
    """The Bradford matrix taking D65 XYZ to D50 (the ICC's chromatic adaptation, its chad tag)."""
    cone = _BRADFORD @ _xyz(D65_XY), _BRADFORD @ D50
    return np.linalg.inv(_BRADFORD) @ np.diag(cone[1] / cone[0]) @ _BRADFORD


def colorants(space: Space) -> np.ndarray:
    """The 3x3 matrix linear RGB -> XYZ (D50 adapted), its columns the profile's rXYZ, gXYZ, bXYZ."""
    primaries = np.stack([_xyz(p) for p in space.primaries], axis=1)
    scale = np.linalg.solve(primaries, _xyz(D65_XY))
    return adaptation_to_d50() @ (primaries * scale)


def build_profile(space: Space) -> bytes:
    """An ICC v4 display profile (matrix/TRC) of `space`, the bytes a file embeds."""
    matrix = colorants(space)
    tags = [
        (b"desc", _mluc(space.name)),
        (b"cprt", _mluc("No copyright, use freely")),
        (b"wtpt", _xyz_tag(D50)),
        (b"chad", b"sf32" + bytes(4) + b"".join(_s15(v) for v in adaptation_to_d50().ravel())),
        (b"rXYZ", _xyz_tag(matrix[:, 0])),
        (b"gXYZ", _xyz_tag(matrix[:, 1])),
        (b"bXYZ", _xyz_tag(matrix[:, 2])),
        (b"rTRC", _para(space.curve)),
    ]
    return _assemble(tags, shared={b"gTRC": b"rTRC", b"bTRC": b"rTRC"})


def _assemble(tags: list[tuple[bytes, bytes]], shared: dict[bytes, bytes]) -> bytes:
    count = len(tags) + len(shared)
    offset = 128 + 4 + 12 * count
    table, data, where = [], b"", {}
    for signature, body in tags:
        body += bytes(-len(body) % 4)  # every tag starts on a 4-byte boundary
        where[signature] = (offset + len(data), len(body))
        table.append(signature + struct.pack(">II", *where[signature]))
        data += body
    table += [alias + struct.pack(">II", *where[target]) for alias, target in shared.items()]
    size = offset + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x04300000, b"mntr", b"RGB ", b"XYZ ")
    header += struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"APPL" + bytes(4 + 4 + 4 + 8 + 4)
    header += b"".join(_s15(v) for v in D50) + b"lcms" + bytes(16 + 28)
    return header + struct.pack(">I", count) + b"".join(table) + data


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: np.ndarray) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in xyz)


def _para(curve: ToneCurve) -> bytes:
    if curve.d == 0 and curve.a == 1 and curve.b == 0:
        return b"para" + bytes(4) + struct.pack(">HH", 0, 0) + _s15(curve.gamma)
    values = (curve.gamma, curve.a, curve.b, curve.c, curve.d)
    return b"para" + bytes(4) + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in values)


def _mluc(text: str) -> bytes:
    encoded = text.encode("utf-16-be")
    return b"mluc" + bytes(4) + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(encoded), 28) + encoded


@dataclass(frozen=True)
class MatrixProfile:
    """What a matrix/TRC profile says: linear RGB -> XYZ (D50) and each channel's tone curve, sampled."""

    matrix: np.ndarray  # 3x3, columns rXYZ gXYZ bXYZ
    curves: tuple[np.ndarray, np.ndarray, np.ndarray]  # linear value at _SAMPLES evenly spaced encoded values

    def decode(self, encoded: np.ndarray) -> np.ndarray:
        """Encoded 0..1 (...x3) -> linear 0..1."""
        out = np.empty(encoded.shape, np.float32)
        for channel, curve in enumerate(self.curves):
            out[..., channel] = _lookup(encoded[..., channel], curve)
        return out

    def encode(self, linear: np.ndarray) -> np.ndarray:
        """Linear 0..1 (...x3) -> encoded 0..1 through each channel's inverted curve."""
        out = np.empty(linear.shape, np.float32)
        for channel, inverse in enumerate(self._inverses):
            # Looked up by the fourth root of the light: tone curves are steep near black, their inverse in
            # that variable is smooth, so an evenly spaced table stays exact to far below a 16-bit step.
            out[..., channel] = _lookup(np.sqrt(np.sqrt(np.clip(linear[..., channel], 0.0, 1.0))), inverse)
        return out

    @functools.cached_property
    def _inverses(self) -> list[np.ndarray]:
        root = np.linspace(0.0, 1.0, _SAMPLES) ** 4
        grid = np.linspace(0.0, 1.0, _SAMPLES)
        return [np.interp(root, np.maximum.accumulate(curve), grid) for curve in self.curves]


_SAMPLES = 65536


def _lookup(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Linear interpolation in a table sampled at evenly spaced points of 0..1 (np.interp without its search)."""
    position = np.clip(values, 0.0, 1.0).astype(np.float32) * np.float32(len(table) - 1)
    index = np.minimum(position.astype(np.int32), len(table) - 2)
    low = table[index].astype(np.float32)
    return low + (position - index) * (table[index + 1].astype(np.float32) - low)


def read_matrix_profile(data: bytes) -> MatrixProfile | None:
    """The colorants and curves of an RGB matrix/TRC profile, or None for any other kind (LUT, grey, CMYK)."""
    if len(data) < 132 or data[16:20] != b"RGB " or data[36:40] != b"acsp":
        return None
    tags = _tag_table(data)
    try:
        matrix = np.stack([_read_xyz(data, tags[s]) for s in (b"rXYZ", b"gXYZ", b"bXYZ")], axis=1)
        curves = tuple(_read_curve(data, tags[s]) for s in (b"rTRC", b"gTRC", b"bTRC"))
    except (KeyError, ValueError, struct.error):
        return None
    if any(c is None for c in curves) or abs(np.linalg.det(matrix)) < 1e-9:
        return None
    return MatrixProfile(matrix, curves)  # type: ignore[arg-type]


def _tag_table(data: bytes) -> dict[bytes, tuple[int, int]]:
    (count,) = struct.unpack_from(">I", data, 128)
    tags = {}
    for index in range(min(count, 200)):
        signature, offset, size = struct.unpack_from(">4sII", data, 132 + 12 * index)
        if offset + size <= len(data):
            tags[signature] = (offset, size)
    return tags


def _read_xyz(data: bytes, where: tuple[int, int]) -> np.ndarray:
    offset, _ = where
    if data[offset:offset + 4] != b"XYZ ":
        raise ValueError("not an XYZ tag")
    return np.array(struct.unpack_from(">3i", data, offset + 8)) / 65536.0


def _read_curve(data: bytes, where: tuple[int, int]) -> np.ndarray | None:
    offset, _ = where
    kind, grid = data[offset:offset + 4], np.linspace(0.0, 1.0, _SAMPLES)
    if kind == b"curv":
        (count,) = struct.unpack_from(">I", data, offset + 8)
        if count == 0:
            return grid
        if count == 1:
            return grid ** (struct.unpack_from(">H", data, offset + 12)[0] / 256.0)
        table = np.array(struct.unpack_from(f">{count}H", data, offset + 12)) / 65535.0
        return np.interp(grid, np.linspace(0.0, 1.0, count), table)
    if kind == b"para":
        return _parametric(data, offset, grid)
    return None


def _parametric(data: bytes, offset: int, grid: np.ndarray) -> np.ndarray | None:
    """ICC.1 table 68: function types 0..4 of the parametricCurveType."""
    (kind,) = struct.unpack_from(">H", data, offset + 8)
    counts = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
    if kind not in counts:
        return None
    p = [v / 65536.0 for v in struct.unpack_from(f">{counts[kind]}i", data, offset + 12)]
    g, a, b, c, d, e, f = (p + [0.0] * 7)[:7] if kind else (p[0], 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if kind == 1:  # Y = (aX+b)^g from -b/a, else 0
        d = -b / a
    elif kind == 2:  # Y = (aX+b)^g + c from -b/a, else c
        d, e, f = -b / a, c, c
        c = 0.0
    elif kind == 4:  # Y = (aX+b)^g + e from d, else cX + f
        pass
    power = np.power(np.maximum(a * grid + b, 0.0), g) + (e if kind in (2, 4) else 0.0)
    toe = c * grid + (f if kind in (2, 4) else 0.0)
    return np.clip(np.where(grid >= d, power, toe), 0.0, 1.0)
