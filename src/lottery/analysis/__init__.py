"""Analysis of finished runs: summaries, figures (and, later, statistics and reports)."""
