#!/bin/bash
# new-user walk: follow only the README, from a fresh clone, in a fresh venv
source /tmp/nu/venv/bin/activate
cd /tmp/nu/bnextbench
step() { echo "=== \$ $*  [$(date -u +%H:%M:%S)]"; local t0=$(date +%s.%N); bash -c "$*"; local rc=$?; echo "=== rc=$rc wall=$(echo "$(date +%s.%N) - $t0" | bc) s"; }
step 'pip install -q -e . 2>&1 | grep -v "WARNING: Running pip as"'
step 'bnextbench search --budget 0.3GBOPs'
step 'bnextbench show search-0.3GBOPs'
step 'bnextbench report --study search-0.3GBOPs'
step 'bnextbench plot curves 1'
step 'bnextbench models'
