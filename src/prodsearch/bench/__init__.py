"""Benchmarks: commands that measure and print figures with their baseline ratio."""
