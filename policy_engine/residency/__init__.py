"""Measured residency: the native record format, the source adapters and the aggregation.

``records`` defines one native record; ``native`` reads and writes JSON Lines and CSV;
``opencost``, ``prometheus`` and ``focus`` turn each source's documented format into native
records; ``aggregate`` joins records to the portfolio's deployments and computes the values
policies see as ``measured``.
"""
