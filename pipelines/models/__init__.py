"""Models: one reference string for every model (``references``), the generation and
log-likelihood backends behind one interface (``backends``, ``generation``, ``loglik``),
grammar-constrained output (``structured``), batch memory (``device_memory``), and the
OpenAI-compatible local server with its shared engine (``server``, ``server_engine``).

Imports ``core`` and ``tasks`` only.
"""
