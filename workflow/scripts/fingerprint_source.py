from meddap.data.fingerprint import fingerprint_source
from meddap.run import jobs

jobs.main(snakemake, fingerprint_source)  # noqa: F821
