"""Wire formats: envelopes, the Open Inference Protocol, MQTT topics and aggregate keys."""
