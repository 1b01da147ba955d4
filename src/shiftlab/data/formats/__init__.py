"""Readers and writers of files that other tools and published studies use (imagenet-testbed CSVs, ...)."""
