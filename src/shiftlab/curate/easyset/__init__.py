"""A model-specific curated set of clean, easy images (SPECS S5, SCOOTER's ImageNet S-R50-N): ``ranking`` (the
``safebets.json`` lists), ``select`` (ranking a dataset through the prediction store; extras), ``records`` (the
intervention records), ``stats`` (the reconciled statistics), ``notes`` (the published notes → records),
``audit`` (the published figures recomputed and compared), ``build`` (the final set and the post-edit check)."""
