"""Benchmarks of the engine against the emulator, run in separate processes.

``python -m benchmarks`` (or ``make bench``) runs everything and writes
``benchmarks/RESULTS.md``; ``--quick`` runs a reduced version of everything in well
under two minutes. Each measurement is a fresh client process talking to an emulator
process over loopback, so the CPU time and peak memory it reports are the client's
alone.
"""
