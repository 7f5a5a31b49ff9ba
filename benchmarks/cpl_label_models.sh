#!/usr/bin/env bash
# CPL under the label model it assumes (issue #37): every figure of docs/results.md#cpl for
# one task. Usage: bash benchmarks/cpl_label_models.sh plate|block [OUT]  (OUT: runs/cpl37)
# Users of `two-modes` answering by regret, then by partial return
# (benchmarks/populations/*_two_modes_{regret,partial}.yaml); the loop's answer budget
# (200 users, 48 answers each); new users asked k = 4 active questions. About 40 min per
# task on 2 cores (two 1M-step PPO runs: BTL and VPL + PPO). Writes OUT/final_TASK/*.json.
set -euo pipefail
TASK=$1; R=${2:-runs/cpl37}; F=$R/final_$TASK; POPS=benchmarks/populations
case $TASK in
  plate) ENV=robopref/PlatePlacement-v0 ;;
  block) ENV=robopref/BlockSort-v0 ;;
  *) echo "usage: $0 plate|block [OUT]" >&2; exit 2 ;;
esac
REGRET=$POPS/${TASK}_two_modes_regret.yaml; PARTIAL=$POPS/${TASK}_two_modes_partial.yaml
mkdir -p "$F"
collect() {  # OUT POPULATION [collect options]
  local out=$1 pop=$2; shift 2
  [ -f "$out" ] || robopref collect --env $ENV --population "$pop" --users 200 \
    --queries-per-user 48 --seed 0 --progress false --out "$out" "$@" | tail -n 1
}
vpl() {  # DATA OUT KIND
  [ -f "$2" ] || robopref train-reward --data "$1" --model "$3" --out "$2" --seed 0 | tail -n 1
}
collect $R/${TASK}_regret.npz $REGRET
collect $R/${TASK}_regret_rank.npz $REGRET --question ranking:4
collect $R/${TASK}_regret_rating.npz $REGRET --question rating
# diagnostic only: experts aimed at the population's goals (oracle knowledge)
collect $R/${TASK}_regret_oracledata.npz $REGRET --population-goal-share 1.0
collect $R/${TASK}_partial.npz $PARTIAL
vpl $R/${TASK}_regret.npz $R/${TASK}_regret_vpl.pt vpl
vpl $R/${TASK}_regret.npz $R/${TASK}_regret_btl.pt btl
vpl $R/${TASK}_partial.npz $R/${TASK}_partial_vpl.pt vpl
RL="robopref train-policy --steps 1000000 --progress false --eval-episodes 0"
[ -f $F/btl/model.zip ] || $RL --reward $R/${TASK}_regret_btl.pt --data $R/${TASK}_regret.npz --out $F/btl --name btl | tail -n 1
[ -f $F/vpl/model.zip ] || $RL --reward $R/${TASK}_regret_vpl.pt --data $R/${TASK}_regret.npz --out $F/vpl --name vpl | tail -n 1
CPL="robopref train-policy --method cpl --progress false --eval-episodes 0 --overwrite"
PREF="--cpl-bc-data preferred --cpl-bc-steps 5000"
V=$R/${TASK}_regret_vpl.pt; VP=$R/${TASK}_partial_vpl.pt
$CPL --reward $V --data $R/${TASK}_regret.npz --out $F/cpl --name cpl | tail -n 1
$CPL --reward $V --data $R/${TASK}_regret.npz --out $F/cpl-pref --name cpl-pref $PREF | tail -n 1
$CPL --reward $V --data $R/${TASK}_regret_rank.npz --out $F/cpl-rank --name cpl-rank $PREF --cpl-loss rankings | tail -n 1
$CPL --reward $V --data $R/${TASK}_regret_rating.npz --out $F/cpl-rating --name cpl-rating $PREF | tail -n 1
$CPL --reward $V --data $R/${TASK}_regret.npz --out $F/cpl-plain --name cpl-plain --cpl-latent none $PREF | tail -n 1
$CPL --reward $V --data $R/${TASK}_regret_oracledata.npz --out $F/cpl-oracledata --name cpl-oracledata $PREF | tail -n 1
$CPL --reward $VP --data $R/${TASK}_partial.npz --out $F/partial-cpl --name cpl | tail -n 1
$CPL --reward $VP --data $R/${TASK}_partial.npz --out $F/partial-cpl-pref --name cpl-pref $PREF | tail -n 1
$CPL --reward $VP --data $R/${TASK}_partial.npz --out $F/partial-cpl-plain --name cpl-plain --cpl-latent none $PREF | tail -n 1
EVAL="robopref evaluate --users 100 --seed 3 --queries 4 --overwrite"
$EVAL --policy $F/cpl $F/cpl-pref $F/cpl-rank $F/cpl-rating $F/cpl-plain $F/cpl-oracledata $F/btl \
  --reward $V --population $REGRET --json $F/regret.json
$EVAL --policy $F/vpl $F/btl --reward $V --population $REGRET --json $F/vpl_ppo.json
$EVAL --policy $F/partial-cpl $F/partial-cpl-pref $F/partial-cpl-plain $F/btl \
  --reward $VP --population $PARTIAL --json $F/partial.json
