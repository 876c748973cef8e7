"""pdiff: Neural Network Diffusion (p-diff, arXiv 2402.13144) as a reproducible DVC pipeline."""

__version__ = "0.1.0"


class PdiffError(Exception):
    """An error a user can fix (bad params, missing or corrupt file). Stages print it as one paragraph."""
