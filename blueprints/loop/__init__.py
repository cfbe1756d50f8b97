"""Example: loop (see the blueprint file and nodes.py here)."""
