"""Test sets as data: vocabularies, manifests, on-disk layouts and robust decoding."""

from shiftlab.data.classes import Vocabulary, imagenet_1k
from shiftlab.data.layouts import LAYOUTS, read_dataset
from shiftlab.data.manifest import Manifest

__all__ = ["LAYOUTS", "Manifest", "Vocabulary", "imagenet_1k", "read_dataset"]
