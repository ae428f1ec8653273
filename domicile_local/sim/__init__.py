"""`domicile simulate`: the synthesized app, run locally (moto, MQTT brokers, real handlers, real devices)."""
