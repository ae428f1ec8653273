"""Edge inference: the device side of domicile (model, packing, transports, store and forward)."""
