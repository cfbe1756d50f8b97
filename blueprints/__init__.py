"""Example blueprints, each in a directory with the node code (`nodes.py`) it runs.

The directories are packages so `--registry blueprints.<example>.nodes:registry` imports them
when `flowcraft` runs from the repository root.
"""
