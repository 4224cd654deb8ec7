"""Differentiable architecture search: the recipe (recipe), a run's state and files
(state, output), the DARTS iteration (step), where a search method plugs in (method),
the architect (alpha updates), the image and text drivers (images, text) and the entry
point (entry: ``run_search``)."""
