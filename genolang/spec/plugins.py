"""Ops from Python plugins: an installed package declares entry points in the group
``genolang.ops``; an entry point named N whose object is a factory
``(channels: int, stride: int, affine: bool) -> torch.nn.Module`` (mapping N x C x H x W
to N x C x ceil(H/stride) x ceil(W/stride)) makes N usable in any space. Checking a spec
reads the entry points' names only: nothing is imported until a network is built
(``genolang.ops.build``)."""

from __future__ import annotations

from importlib import metadata

from genolang.spec.ops import OpDef

GROUP = "genolang.ops"


def plugin_ops() -> dict[str, OpDef]:
    """The ops the installed plugins offer, by name (the first distribution wins)."""
    out: dict[str, OpDef] = {}
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: (e.name, e.value)):
        if ep.name not in out:
            dist = getattr(ep, "dist", None)
            where = f"plugin {dist.name} {dist.version}" if dist is not None else "plugin"
            out[ep.name] = OpDef(ep.name, None, plugin=ep.value, origin=f"{where} ({ep.value})")
    return out
