"""Model specs, one YAML file per model, shipped as package data (``umrisk.models``).

A new outcome on an existing task kind is a new file here, not new code.
"""
