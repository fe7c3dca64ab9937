"""An offline Anthropic Messages API for tests, benchmarks, demos and failure rehearsals.

Entry points: `ccgate.sim.config.SimConfig`, `ccgate.sim.faults.Fault` and
`ccgate.sim.server.create_app` / `start_sim` / `run_sim`.
"""
