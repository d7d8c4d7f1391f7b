"""Stores with Kubernetes object semantics: the Store protocol and its backends."""
