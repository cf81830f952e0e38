from meddap.report.cross_domain import cross_domain_table
from meddap.run import jobs

jobs.main(snakemake, cross_domain_table)  # noqa: F821
