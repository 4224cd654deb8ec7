#!/usr/bin/env bash
# The DARTS paper's CIFAR-10 search (Liu, Simonyan and Yang, ICLR 2019, section 3.1 and
# appendix A.1), on one GPU; see recipes/README.md.
#
#   DATA=~/data ./recipes/darts_cifar10_search.sh            # second order, seed 0
#   DATA=~/data ORDER=1 SEED=2 ./recipes/darts_cifar10_search.sh
#
# DATA holds cifar-10-batches-py (or -bin); 'genolang train ... --download --data-dir DATA'
# fetches it on a machine with internet.
# The recipe, every value the paper's: the darts_cnn space on the cifar_search skeleton
# (C = 16, 8 cells, reductions at 1/3 and 2/3); the 50,000 training images split in half,
# one half for the weights, the other for the alphas; 50 epochs at batch 64; weights by
# SGD (momentum 0.9, lr 0.025 cosine-annealed to 0.001, weight decay 3e-4, gradient norm
# clipped at 5); alphas by Adam (lr 3e-4, betas 0.5 and 0.999, weight decay 1e-3),
# initialised as 1e-3 x N(0, 1); second order unrolls one weight step (xi = the weight lr).
# The paper ran the search four times (seeds) and kept the cell that retrained best.
#
# Expected time on one NVIDIA H100 (from the bench figures in README.md and
# docs/performance.md: a search step at batch 64 took 1.01 to 1.20 s first order and
# 3.25 s second order, on a host that made every step launch-bound): 391 steps per epoch
# x 50 epochs = 19,550 steps, so about 5.5 to 6.5 hours first order and about 18 hours
# second order, plus a validation pass over 25,000 images after every epoch (forward
# only: a few percent more). A host that keeps the GPU busy should do better; a
# checkpoint after every epoch lets the run be resumed (RESUME=1).
set -euo pipefail

DATA=${DATA:?set DATA to the folder holding cifar-10-batches-py}
ORDER=${ORDER:-2}
SEED=${SEED:-0}
RUN=${RUN:-runs/darts-cifar10-search-order${ORDER}-seed${SEED}}
OUT=${OUT:-darts_cifar10_order${ORDER}_seed${SEED}.geno}
GENOLANG=${GENOLANG:-genolang}

extra=()
if [[ "${RESUME:-0}" == 1 ]]; then extra+=(--resume); fi

exec "$GENOLANG" search darts_cnn \
    --network cifar_search \
    --dataset cifar10 --data-dir "$DATA" \
    --epochs 50 --batch-size 64 \
    --order "$ORDER" --seed "$SEED" \
    --lr 0.025 --arch-lr 3e-4 \
    --device cuda \
    --run-dir "$RUN" --out "$OUT" "${extra[@]}"
