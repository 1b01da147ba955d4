"""One module per kind of model source; each exposes a loader ``(rest, *, spec, workspace) -> Classifier`` that
``shiftlab.models.specs`` names in its ``Scheme`` (``hub`` has three: torchvision, timm, RobustBench)."""
