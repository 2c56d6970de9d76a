"""The ``haathi`` command line: pachctl's grammar, ``haathi <verb> <noun>``."""
