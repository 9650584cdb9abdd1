"""cvxpy LP formulations: couplings, the information-agnostic LP, OT plans and the universal bound."""
__all__: list[str] = []
