"""Files written by earlier genolang versions still load: a model checkpoint saved by
version 0.1 before ops were declared in text (tests/data/model-v0.1.pt: DARTS_V2 on a
3-cell, 4-channel skeleton for 1x8x8 images, with the logits it gave on a fixed input)
reloads with no other file, with every saved tensor bit for bit, and computes the same
logits: bit for bit on the machine kind that saved it, within float32 rounding on one
whose CPU picks other convolution kernels (oneDNN's AVX-512 and AMX kernels sum in
another order)."""

from __future__ import annotations

from pathlib import Path

import torch

from genolang.nets.checkpoint import load_model

DATA = Path(__file__).resolve().parent / "data"


def test_a_model_saved_by_version_0_1_reloads_and_computes_the_same_logits() -> None:
    model, geno, network, meta = load_model(DATA / "model-v0.1.pt")
    assert geno.name == "darts_v2" and network.name == "tiny_search"
    assert {op.name for op in geno.space.op_defs} == set(geno.space.ops)  # resolved from the shipped library
    saved = torch.load(DATA / "model-v0.1.pt", weights_only=True)["state_dict"]
    state = model.state_dict()
    assert state.keys() == saved.keys()
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor), name
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        logits = model(x)
    # a float32 net of a few hundred sums: one or two units in the last place where the kernels differ
    torch.testing.assert_close(logits, meta["extra"]["logits"], rtol=1e-6, atol=1e-6)
