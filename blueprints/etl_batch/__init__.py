"""Example: etl_batch (see the blueprint file and nodes.py here)."""
