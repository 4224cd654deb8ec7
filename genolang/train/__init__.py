"""Retraining compiled genotypes: recipes (recipe), the image and text loops (images,
text), the run's checkpoint and resume checks (state), the entry point of ``genolang
train`` (entry: ``run_training``) and the evaluation of saved models (evaluate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genolang.spec.checked import GenotypeSpec, NetworkSpec
from genolang.train.images import TrainResult
from genolang.train.recipe import ImageRecipe, Recipe, TextRecipe, default_recipe

__all__ = ["ImageRecipe", "Recipe", "TextRecipe", "TrainResult", "default_recipe", "train"]


def train(geno: GenotypeSpec, network: NetworkSpec, recipe: Recipe, run_dir: str | Path, **kwargs: Any) -> TrainResult:
    """Train with the loop that fits ``recipe`` (images or text); see
    ``genolang.train.images.train_images`` and ``genolang.train.text.train_text``."""
    if isinstance(recipe, TextRecipe):
        from genolang.train.text import train_text

        kwargs.pop("download", None)
        kwargs.pop("workers", None)
        return train_text(geno, network, recipe, run_dir, **kwargs)
    from genolang.train.images import train_images

    return train_images(geno, network, recipe, run_dir, **kwargs)
