"""One module per kind of model source; each exposes a loader ``(rest, *, spec, workspace) -> Classifier`` that
``shiftlab.models.specs`` names in its ``Scheme``. The zoos (``torchvision_zoo``, ``timm_zoo``,
``robustbench_zoo``, ``madry``) share ``zoo``: spec options, a zoo's transform → Recipe, safe checkpoint reads."""
