"""Compiling checked specs into torch modules: fixed networks from genotypes,
supernets from spaces, both stacked by the same skeleton."""
