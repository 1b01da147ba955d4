"""A Manifest as a ``torch.utils.data.Dataset``."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from shiftlab.data.decode import decode_image
from shiftlab.data.recipes import Recipe


class ManifestDataset(Dataset):
    """Decodes lazily with the manifest's recipe; see ``Manifest.torch_dataset``."""

    def __init__(self, manifest, recipe=None, *, normalize: bool = True):
        self.manifest = manifest
        self.recipe = recipe or Recipe()
        self.normalize = normalize
        self.paths = manifest.abspaths()
        self.labels = manifest.labels
        self.bad: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        r = decode_image(self.paths[i], mode=self.recipe.mode)
        if not r.ok:
            self.bad[self.manifest.ids[i]] = r.reason
            return torch.zeros(self.recipe.input_shape), -1
        x = torch.from_numpy(self.recipe.apply(r.image)).float().div_(255.0)
        if self.normalize:
            x = self.recipe.normalize(x[None])[0]
        return x, int(self.labels[i])
