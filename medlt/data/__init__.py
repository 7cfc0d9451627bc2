"""Ingestion: official dataset layouts -> one canonical table -> MONAI transform pipelines."""
