"""Example: subflow (see the blueprint file and nodes.py here)."""
