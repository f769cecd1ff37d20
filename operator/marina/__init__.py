"""Marina: a Kubernetes-native MLOps operator for regression models."""

__version__ = "0.1.0"
