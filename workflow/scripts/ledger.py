from meddap.run import launch

launch.main(snakemake, "meddap.run.ledger:write_ledger")  # noqa: F821
