"""Hopper's domain core: store, search spaces, procedures, data, training and services."""
