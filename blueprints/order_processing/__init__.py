"""Example: order_processing (see the blueprint file and nodes.py here)."""
