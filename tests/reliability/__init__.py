"""Acceptance tests for torchscan's "zero side effects" promise: the model and the process are left as found."""
