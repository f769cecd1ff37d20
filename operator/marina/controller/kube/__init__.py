"""The operator process's machinery: the one module that talks to the Kubernetes API (`client`), the
settings, leadership among replicas, the background loop, the operator's metrics and its health.

Imports nothing else of the controller.
"""
