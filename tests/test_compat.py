"""Files written by earlier genolang versions still load: a model checkpoint saved by
version 0.1 before ops were declared in text (tests/data/model-v0.1.pt: DARTS_V2 on a
3-cell, 4-channel skeleton for 1x8x8 images, with the logits it gave on a fixed input)
reloads with no other file and computes the same logits bit for bit."""

from __future__ import annotations

from pathlib import Path

import torch

from genolang.nets.checkpoint import load_model

DATA = Path(__file__).resolve().parent / "data"


def test_a_model_saved_by_version_0_1_reloads_and_computes_the_same_logits() -> None:
    model, geno, network, meta = load_model(DATA / "model-v0.1.pt")
    assert geno.name == "darts_v2" and network.name == "tiny_search"
    assert {op.name for op in geno.space.op_defs} == set(geno.space.ops)  # resolved from the shipped library
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), meta["extra"]["logits"])
