"""Marina's prediction server: KServe v1 and Open Inference Protocol v2 over a raw ASGI app.

Kept free of kopf and of any web framework: the hot path is JSON in, one matrix product, JSON out.
May import `marina.model`, `marina.data` and everything below them; never the controller or the jobs.
"""
