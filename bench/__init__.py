"""Measurements of Reclaim on this machine (`python -m bench ...`)."""
