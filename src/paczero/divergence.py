"""A run that diverged: a non-finite loss stops it at a consistent, checkpointed step, with a
note (``DIVERGED``) that makes ``resume`` want a changed key, and one line that names it."""

from __future__ import annotations

import hashlib

from paczero.errors import Diverged, UserError
from paczero.replay import rebuild
from paczero.runs import write_json

DIVERGED = "diverged.json"  # written when a run stops on a non-finite loss


def stop_diverged(trainer, err: Diverged) -> UserError:
    """A non-finite loss at step k (before step k released anything) in ``trainer``'s run
    (a ``paczero.trainer.Trainer``): rebuild theta_k
    (the live tensors are perturbed), checkpoint it, note the divergence so that ``resume``
    wants a changed key, and return the one-line error to raise."""
    s, run, step = trainer.s, trainer.run_dir, err.step
    if step == 0 and "dev" in err.what:
        return UserError(
            f"the initial model gives a non-finite dev loss ({err.what}); the likely key is "
            f"model.dtype ({s.cfg.model.dtype}): use float32"
        )
    if step == 0:
        return UserError(
            f"training diverged at step 0 ({err.what}): the perturbation theta + eps z already "
            f"gives a non-finite loss; the likely key is zo.eps ({s.cfg.zo.eps:g}): lower it"
        )
    key, value = "train.lr", s.cfg.train.lr
    if s.mechanism.replayable:  # a gradient step perturbs nothing: theta_k is live
        rebuild(s, run, step, run.releases(), theta0=trainer.theta0)
    trainer.save_checkpoint(step)
    if trainer.main:
        config_sha = hashlib.sha256(run.config_path.read_bytes()).hexdigest()
        note = {"step": step, "what": err.what, "key": key, "config": config_sha}
        write_json(run.path / DIVERGED, note)
    return UserError(
        f"training diverged at step {step} ({err.what}); the likely key is {key} ({value:g}): "
        f"{run.path} is consistent and checkpointed at step {step}; continue with a smaller "
        f"value: paczero resume {run.path} --set {key}=VALUE (or start a new run)"
    )
