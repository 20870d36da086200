"""Openness: the grade from evidence, licences, and the curated catalog."""
