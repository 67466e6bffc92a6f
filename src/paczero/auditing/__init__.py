"""`paczero audit`: what an attacker actually learns from a run, held against its guarantee.

The auditor plays the attacker with the public side of a run only (config, release log,
public stream, pool, candidate subsets, canary texts), then scores its guesses with the
truth kept under ``private/``:

- the transcript attack (PACZero): the attacker's posterior over the M candidate subsets,
  rebuilt from recomputed subset signs and the public release fields, checked against the
  mechanism's own logged posterior;
- the model attack (every mechanism with randomised membership): how much the run's final
  model prefers each example over the base model, for membership and for naming S*;
- canaries (DP, MeZO): ``audit.canaries`` at training time randomises m extra examples,
  and the one-run auditing theorem turns the count of correct guesses into an epsilon;
- trials (``audit_trials``): the same short run repeated with fresh secrets, for the
  guarantee in expectation.

Method, assumptions and examples: docs/audit.md.
"""

from paczero.auditing.one_run import AuditReport, audit, claim_of
from paczero.auditing.trials import audit_trials

__all__ = ["AuditReport", "audit", "audit_trials", "claim_of"]
