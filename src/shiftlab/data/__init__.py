"""Test sets as data: vocabularies, manifests, on-disk layouts and robust decoding."""

from shiftlab.data.classes import Vocabulary, imagenet_1k
from shiftlab.data.manifest import Manifest
from shiftlab.data.layouts import LAYOUTS, read_dataset

__all__ = ["Vocabulary", "imagenet_1k", "Manifest", "LAYOUTS", "read_dataset"]
