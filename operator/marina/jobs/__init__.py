"""The commands the operator runs in Jobs (`prepare`, `train`, `evaluate`) and how they report:
one typed result document and an exit code (`results`), progress while they run (`progress`).

May import `marina.model`, `marina.data` and everything below them; never the controller or serving.
"""
