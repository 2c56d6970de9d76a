"""Typed identifiers and frozen value types shared by every layer."""
