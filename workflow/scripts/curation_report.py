from meddap.report.curation import curation_report
from meddap.run import jobs

jobs.main(snakemake, curation_report)  # noqa: F821
