"""Static analysis of blueprints: graph structure, summaries, linting and diagrams (SPEC 8)."""

from flowcraft_core.analysis.graph import GraphStructure, compute_structure

__all__ = ["GraphStructure", "compute_structure"]
