"""The robust-features tests share the session's ``zoo_world`` (world + ``cnn-medium-s0``, an undefended CNN) and its
decoded training and test pixels."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def world_pixels(zoo_world):
    """(classifier cnn-medium-s0, train manifest, train uint8 pixels, test manifest, test uint8 pixels)."""
    from shiftlab.analyze.robustfeatures.protocol import decoded_pixels
    from shiftlab.models.specs import load_model
    from shiftlab.predict.engine import Engine

    ws = zoo_world.workspace
    clf = load_model("world:cnn-medium-s0", workspace=ws)
    engine = Engine(ws, progress=False)
    try:
        train, test = zoo_world.manifest("train"), zoo_world.manifest("test")
        return (clf, train, np.array(decoded_pixels(train, clf.recipe, engine)), test,
                np.array(decoded_pixels(test, clf.recipe, engine)))
    finally:
        engine.close()
