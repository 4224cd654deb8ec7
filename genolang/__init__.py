"""genolang: DARTS search spaces and genotypes as a language, compiled to PyTorch."""

__version__ = "0.1.0"
