"""Analyses: pure functions over manifests, images and predictions.

- ``perturbations``: the five perturbation groups of the MNIST robust-features study (SPECS S4), used by
  worst-of-k training in the embedded zoo and by the robust-features tables.
- ``mistakes``: mistake records (``vit3b_mistakes.json`` shape), class confusions and the automatic
  pre-categorisation of a model's top-1 errors (SPECS S2); ``label_issues``: cleanlab's ranking of likely wrong
  given labels; ``label_report``: the report sections of both on the digits world.
"""
