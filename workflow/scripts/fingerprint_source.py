from meddap.data.fingerprint import fingerprint_source
from meddap.run import jobs

jobs.run(snakemake, fingerprint_source)  # noqa: F821
