"""The local run of a synthesized domicile app: the command line, simulate, demo, local invoke, a local core.

Not part of the core library: nothing in `domicile` imports it, and Lambda assets do not ship it.
"""
