"""Which data set names exist and what kind each is."""

from __future__ import annotations

from genolang.errors import UsageError, did_you_mean

IMAGE = ("digits", "fashion-mnist", "cifar10")
TEXT = ("ptb",)


def dataset_names() -> list[str]:
    return [*IMAGE, *TEXT]


def dataset_kind(name: str) -> str:
    """'image' or 'text'; a clear error for an unknown name."""
    if name in IMAGE:
        return "image"
    if name in TEXT:
        return "text"
    raise UsageError(f"unknown dataset '{name}'{did_you_mean(name, dataset_names())}; "
                     f"known: {', '.join(dataset_names())}")
