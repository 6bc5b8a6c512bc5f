"""Governance writes, one module per concern: agents, controls (trading state, breakers,
venue health), rulesets, proposals (submission and the proposal lifecycle), evaluation,
quorum (votes and their tally) and the sweeper. Each state change writes its audit event
in the same transaction; the next pipeline stage is enqueued after commit (chronosx.pipeline)."""
