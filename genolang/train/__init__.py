"""Retraining compiled genotypes: recipes (recipe), the CNN loop (loop), the recurrent
loop (rnn), run state and resumption (state), progress events (events) and the
evaluation of saved models (evaluate)."""

from genolang.train.recipe import ImageRecipe, Recipe, TextRecipe, default_recipe

__all__ = ["ImageRecipe", "Recipe", "TextRecipe", "default_recipe", "train"]


def train(geno, network, recipe, run_dir, **kwargs):  # type: ignore[no-untyped-def]
    """Train with the loop that fits ``recipe`` (images or text); see
    ``genolang.train.loop.train_images`` and ``genolang.train.rnn.train_text``."""
    if isinstance(recipe, TextRecipe):
        from genolang.train.rnn import train_text

        kwargs.pop("download", None)
        kwargs.pop("workers", None)
        return train_text(geno, network, recipe, run_dir, **kwargs)
    from genolang.train.loop import train_images

    return train_images(geno, network, recipe, run_dir, **kwargs)
