"""Auth: activation, hashed tokens and role bindings, in the metadata database.

Below the Api (which checks every operation against these) and beside ``pfs``: jobs check
their pipeline's own identity here before they read inputs.
"""
