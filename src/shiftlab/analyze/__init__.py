"""Auditing models: studies over manifests and predictions that return dataclasses of DataFrames.

- ``evaluate``: top-1 / top-5 with intervals (``shiftlab eval``); ``multilabel``: multi-label accuracy,
  ImageNet-M and ReaL per model;
- ``robustness``: the effective-robustness study (SPECS S1.7);
- ``mistakes``: mistake records, class confusions and the automatic pre-categorisation of a model's top-1
  errors (SPECS S2); ``label_issues``: cleanlab's ranking of likely wrong given labels.

``analyze`` and ``curate`` are siblings: neither imports the other (import-linter checks it).
"""
