"""Analysis of finished runs: the tidy table, statistics over seeds, the verdict, figures, reports."""
