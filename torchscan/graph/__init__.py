"""Capture a model into a graph: trace (fx), shapes (fake tensors), op calls, networkx graph."""
