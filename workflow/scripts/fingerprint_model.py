from meddap.data.fingerprint import fingerprint_model
from meddap.run import jobs

jobs.main(snakemake, fingerprint_model)  # noqa: F821
