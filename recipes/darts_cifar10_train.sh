#!/usr/bin/env bash
# The DARTS paper's CIFAR-10 retraining (Liu, Simonyan and Yang, ICLR 2019, section 3.2 and
# appendix A.2), on one GPU; see recipes/README.md.
#
#   DATA=~/data ./recipes/darts_cifar10_train.sh                      # darts_v2
#   DATA=~/data GENOTYPE=darts_cifar10_order2_seed0.geno SEED=1 ./recipes/darts_cifar10_train.sh
#
# The recipe, every value the paper's: the cifar skeleton (C = 36, 20 cells, auxiliary
# head after cell 13 with weight 0.4, drop path rising linearly to 0.2); 600 epochs at
# batch 96; SGD (momentum 0.9, lr 0.025 cosine-annealed to 0, weight decay 3e-4, gradient
# norm clipped at 5); random crop 32 with padding 4, horizontal flip, cutout 16,
# normalisation by the CIFAR-10 channel means and standard deviations. The paper reports
# DARTS (second order) at 2.76 +- 0.09% test error with 3.3M parameters.
#
# Expected time on one NVIDIA H100 (the bench figure in README.md: a DARTS_V2 training
# step at batch 96 took 0.165 s in float32, 580 images/s, on a launch-bound host; with
# --amp --channels-last 0.224 s there): 521 steps per epoch x 600 epochs = 312,600 steps,
# about 14.5 hours in float32, plus a test pass over 10,000 images after every epoch
# (forward only: a few percent more). Resume an interrupted run with RESUME=1.
set -euo pipefail

DATA=${DATA:?set DATA to the folder holding cifar-10-batches-py}
GENOTYPE=${GENOTYPE:-darts_v2}
SEED=${SEED:-0}
RUN=${RUN:-runs/darts-cifar10-train-$(basename "${GENOTYPE%.geno}")-seed${SEED}}
GENOLANG=${GENOLANG:-genolang}

extra=()
if [[ "${RESUME:-0}" == 1 ]]; then extra+=(--resume); fi

exec "$GENOLANG" train "$GENOTYPE" \
    --network cifar \
    --dataset cifar10 --data-dir "$DATA" \
    --epochs 600 --batch-size 96 \
    --lr 0.025 --lr-min 0 --schedule cosine --momentum 0.9 --weight-decay 3e-4 --grad-clip 5 \
    --cutout 16 --augment --aux-weight 0.4 --drop-path 0.2 \
    --seed "$SEED" \
    --device cuda \
    --run-dir "$RUN" "${extra[@]}"
