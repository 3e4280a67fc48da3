"""Prompt rendering for chat requests."""
