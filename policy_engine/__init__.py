"""policy-engine: policy-as-code governance for AI inference model portfolios."""

__version__ = "0.1.0"
