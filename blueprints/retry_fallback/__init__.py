"""Example: retry_fallback (see the blueprint file and nodes.py here)."""
