"""pydantic models of the files users write. Data only: no I/O, no CEL, no printing."""
