"""A synthetic population with known risks: see ``risk.py`` for the model and ``generate.py`` for the output."""
