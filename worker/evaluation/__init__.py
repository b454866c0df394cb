"""Scoring replay outputs against a labelled corpus (`sessionwarden score`).

``records`` reads the replay outputs and the labels (and knows where an
alert keeps its session id), ``score`` decides each session's outcome and
aggregates per scenario, ``report`` prints the table. docs/evaluation.md
describes the corpus and the measures.
"""
