"""Scripts that turn MediX datasets into verl parquet."""
