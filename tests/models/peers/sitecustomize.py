"""Loaded by the peer-library subprocess only (it is on that process's PYTHONPATH, never on the suite's).

MadryLab's robustness 1.2.1, the last release, imports ``torchvision.models.utils``, which torchvision 0.13
removed; the function it wants now lives in ``torch.hub``. Nothing else is patched.
"""
import sys
import types

import torch.hub

_utils = types.ModuleType("torchvision.models.utils")
_utils.load_state_dict_from_url = torch.hub.load_state_dict_from_url
sys.modules["torchvision.models.utils"] = _utils
