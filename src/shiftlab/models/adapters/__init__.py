"""One module per kind of model source; each exposes ``load(rest, spec=..., workspace=...)``."""
