"""Test-environment-only shim: lets PyPI's torchvision wheel import beside CPU torch.

The torchvision wheel on PyPI is a CUDA build; its compiled ops fail to load next to the CPU
torch used on CPU-only machines, and its ``_meta_registrations`` then aborts the import with
``operator torchvision::nms does not exist``. Declaring those two operator schemas before
torchvision is imported lets the pure-Python parts (transforms v2, the Qwen VL image and video
processors, qwen_vl_utils) work; torchvision's C++ ops stay unusable.

Installed by ``.ci/run`` as ``medix_tv_shim.py`` plus a ``.pth`` line in the venv's site-packages,
so Ray workers inherit it. Nothing here is imported until something imports torchvision.
"""

import importlib.abc
import sys

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_libs = []


def _declare_schemas():
    import torch

    for name, schema in _SCHEMAS.items():
        try:
            torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
            continue  # already declared (a real torchvision build, or a second call)
        except RuntimeError:
            pass
        lib = torch.library.Library("torchvision", "FRAGMENT")
        lib.define(schema)
        _libs.append(lib)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            sys.meta_path.remove(self)
            _declare_schemas()
        return None


def install():
    if "torchvision" not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
