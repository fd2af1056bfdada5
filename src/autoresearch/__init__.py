"""autoresearch: an autonomous research loop for machine-learning code."""

__version__ = "0.1.0"
