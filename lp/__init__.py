"""cvxpy LP formulations: couplings, the information-agnostic LP, OT plans and the universal bound.

Build, solve and certify are separate (:mod:`specoracle.lp._solve`): every LP is sparse data
solved with HiGHS (Clarabel as fallback); any status but ``optimal`` raises :class:`LPError`;
every result carries its size, solve time and a certificate computed outside the solver.

- :func:`coupling`, :func:`coupling_value`: one node, k drafts (i.i.d. or without replacement),
  plain or augmented (conditional) target (ALGORITHMS-2.md §7-§8).
- :func:`single_path_bound`, :func:`universal_bound`, :func:`path_selection_bound`,
  :func:`coverage_bound`: multi-step bounds (ALGORITHMS.md §5.1, §5.2, §10.4) as :class:`Bound`.
- :func:`level_plans`, :func:`plan_verifier`, :func:`conditional_verifier`,
  :func:`universal_verifier`: plans and the verifiers that execute them (lossless by construction).
"""
from ._solve import Certificate, LPError, LinearProgram, Solution, certify, solve
from .bounds import Bound, coverage_bound, path_selection_bound, single_path_bound, tree_groups, universal_bound
from .coupling import Coupling, all_in_probabilities, augment, coupling, coupling_value, draft_law
from .plans import (
    LevelPlans,
    NodePlan,
    conditional_verifier,
    level_plans,
    node_plan,
    plan_verifier,
    universal_verifier,
)

__all__ = [
    "Bound",
    "Certificate",
    "Coupling",
    "LPError",
    "LevelPlans",
    "LinearProgram",
    "NodePlan",
    "Solution",
    "all_in_probabilities",
    "augment",
    "certify",
    "conditional_verifier",
    "coupling",
    "coupling_value",
    "coverage_bound",
    "draft_law",
    "level_plans",
    "node_plan",
    "path_selection_bound",
    "plan_verifier",
    "single_path_bound",
    "solve",
    "tree_groups",
    "universal_bound",
    "universal_verifier",
]
