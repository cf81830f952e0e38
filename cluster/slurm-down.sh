#!/usr/bin/env bash
# Stop the single-node cluster that cluster/slurm-up.sh started: cancel jobs, stop the daemons.
set -uo pipefail
scancel --full --user="$(id -un)" 2>/dev/null
for daemon in slurmd slurmctld munged; do
    pkill -x "$daemon" && echo "slurm-down.sh: stopped $daemon"
done
exit 0
