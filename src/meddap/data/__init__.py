"""Data stage: fetch, ingest, duplicate detection and curation, patient-safe folds."""
