"""Differentiable architecture search: the architect (alpha updates), derivation of a
genotype from alphas, and the search loop."""
