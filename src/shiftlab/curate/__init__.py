"""Building test sets: candidates, crowd annotation, near-duplicates, sampling, revisions, curated sets."""
