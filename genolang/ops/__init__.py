"""Torch modules for every op name of ``genolang.spec.opnames``, found through a registry."""

from genolang.ops.registry import CNN_OPS, RNN_ACTIVATIONS, build_cnn_op, register_cnn_op

__all__ = ["CNN_OPS", "RNN_ACTIVATIONS", "build_cnn_op", "register_cnn_op"]
