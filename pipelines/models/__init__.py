"""Models: one reference string for every model (``references``), text-only or image+text
(``modality``), the generation and log-likelihood backends behind one interface (``backends``,
``generation``, ``loglik``; through a serving engine's ``/v1/completions``: ``completions_endpoint``), the image+text backend (``vision``), the log-likelihood of a
reference report given its image (``vision_loglik``) and the offline demo model (``demo_vlm``),
what both local engines share to decode a batch (``decoding``), grammar-constrained output
(``structured``), batch memory (``device_memory``), per-token log-probs of whole sequences
(``prompt_logprobs``), and the OpenAI-compatible local server with its shared engine and its legacy
completions API (``server``, ``server_engine``, ``server_completions``).

Imports ``core`` and ``tasks`` only.
"""
