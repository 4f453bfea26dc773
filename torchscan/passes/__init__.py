"""Pure passes over the captured graph and the model: costs, parameters, rows."""
