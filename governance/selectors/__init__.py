"""Governance reads: controls (rulesets in force, trading state, breakers, venue health),
proposals (what agents may see, the engine's view of a proposal), the decision context
(everything outside a proposal that the rules look at) and the quorum (votes, certificates)."""
