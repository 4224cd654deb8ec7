"""Genotypes under version control: canonical hashes, semantic diffs and git set-up.

``genotype_hash``, ``cell_hash`` and ``space_hash`` are the stable identities that run
provenance records; none of this package imports torch."""

from genolang.vcs.canon import cell_hash, genotype_hash, space_hash

__all__ = ["cell_hash", "genotype_hash", "space_hash"]
