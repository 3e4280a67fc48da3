"""Shared code of the CPU stand-in models (on the Python-backend stub's PYTHONPATH)."""
