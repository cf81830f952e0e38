"""Running jobs: the Snakemake job bridge, provenance, ledger, audit, config, SLURM profile."""
