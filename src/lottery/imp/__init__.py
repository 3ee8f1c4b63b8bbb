"""Iterative magnitude pruning: the driver (levels, rewinding), the branches run beside the
ticket (controls, ablations, other methods), and the early-bird search."""
