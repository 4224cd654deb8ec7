"""Torch modules of ops: built from their checked declarations (``build``), the
multi-layer primitives (``cnn``), the grouped and shared executors of optimized
supernets (``grouped``) and batch norm over a data-parallel run's global batch (``norm``)."""

from genolang.ops.build import OpBuildError, build_op, elementwise

__all__ = ["OpBuildError", "build_op", "elementwise"]
