"""Eval suites: plan and render metrics, GSB pairwise comparisons, and the prompt-iteration loop."""
