"""Static analysis of blueprints: graph structure, summaries, linting and diagrams (SPEC 8)."""

from flowcraft_core.analysis.analyze import BlueprintAnalysis, analyze_blueprint
from flowcraft_core.analysis.diagrams import to_dot, to_mermaid
from flowcraft_core.analysis.graph import GraphStructure, compute_structure
from flowcraft_core.analysis.lint import LintIssue, LintReport, lint_blueprint

__all__ = [
    "BlueprintAnalysis",
    "GraphStructure",
    "LintIssue",
    "LintReport",
    "analyze_blueprint",
    "compute_structure",
    "lint_blueprint",
    "to_dot",
    "to_mermaid",
]
