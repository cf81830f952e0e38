from meddap.report.run_summary import run_summary
from meddap.run import jobs

jobs.main(snakemake, run_summary)  # noqa: F821
