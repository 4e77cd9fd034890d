"""The package's version: stamped on every member's provenance by the engine, shown by `cloudburst --version`."""
__version__ = "0.2.0"
