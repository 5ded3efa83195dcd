"""Test helper: write a legacy-format torch.save file without torch, with the same layout."""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import types

import numpy as np

_MAGIC = 0x1950A86A20F9469CFC6C
_TYPES = {np.dtype(np.uint8): "ByteStorage", np.dtype(np.float32): "FloatStorage"}


def write_legacy(tensors: dict[str, np.ndarray], extra_globals: dict | None = None) -> bytes:
    """Serialise {name: array} the way torch._legacy_save does (tensors as persistent storages)."""
    fake_torch, fake_utils = _fake_modules()
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = fake_torch, fake_utils
    try:
        return _write(tensors, fake_torch, fake_utils, extra_globals or {})
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module


def _fake_modules():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("ByteStorage", "FloatStorage"):
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch, name, cls)
    torch._utils = utils
    return torch, utils


class _Storage:
    def __init__(self, key: str, array: np.ndarray, torch) -> None:
        self.key, self.array = key, array
        self.type = getattr(torch, _TYPES[array.dtype])


class _Tensor:
    def __init__(self, storage: _Storage, utils) -> None:
        self.storage, self.utils = storage, utils

    def __reduce__(self):
        shape = self.storage.array.shape
        stride = tuple(s // self.storage.array.itemsize for s in self.storage.array.strides)
        return (self.utils._rebuild_tensor_v2,
                (self.storage, 0, shape, stride, False, collections.OrderedDict()))


def _write(tensors, torch, utils, extra_globals) -> bytes:
    out = io.BytesIO()
    for header in (_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                  "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, out, protocol=2)
    storages = {}
    obj = {}
    for index, (name, array) in enumerate(tensors.items()):
        storage = _Storage(str(1000 + index), np.ascontiguousarray(array), torch)
        storages[storage.key] = storage
        obj[name] = _Tensor(storage, utils)
    obj.update(extra_globals)

    class Pickler(pickle.Pickler):
        def persistent_id(self, item):
            if isinstance(item, _Storage):
                return ("storage", item.type, item.key, "cpu", item.array.size, None)
            return None

    Pickler(out, protocol=2).dump(obj)
    keys = sorted(storages)
    pickle.dump(keys, out, protocol=2)
    for key in keys:
        array = storages[key].array
        out.write(struct.pack("<q", array.size))
        out.write(array.tobytes())
    return out.getvalue()
