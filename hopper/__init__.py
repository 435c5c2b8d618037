"""Hopper: intermittent human-in-the-loop model selection with model hopper parallelism."""

__version__ = "0.1.0"
