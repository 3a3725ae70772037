"""ESPnet's trainer with a safe, restartable resume."""

import logging
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from espnet2.schedulers.abs_scheduler import AbsScheduler
from espnet2.train.reporter import Reporter
from espnet2.train.trainer import Trainer

from espnet2_smile.utils.checkpoint import CheckpointError, check_checkpoint, weights_only_loads


class AVSRTrainer(Trainer):
    """ESPnet's :class:`Trainer`; only :meth:`resume` differs.

    ``--resume true`` (the recipe's stage 11) restarts an interrupted run from
    ``<output_dir>/checkpoint.pth``, which ESPnet writes at the end of every epoch.
    Here the checkpoint is checked first (:func:`check_checkpoint`: no global outside
    the allow-list, a readable file) and loaded weights-only; and because ESPnet writes
    ``checkpoint.pth`` *before* ``<epoch>epoch.pth``, a run killed between the two
    saves has no model file for its last epoch, which model averaging at the end of
    training would need: it is written again from the checkpoint's weights.
    """

    @staticmethod
    def resume(
        checkpoint: Union[str, Path],
        model: torch.nn.Module,
        reporter: Reporter,
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers: Sequence[Optional[AbsScheduler]],
        scaler: Optional[torch.amp.GradScaler],
        ngpu: int = 0,
        strict: bool = True,
    ):
        try:
            check_checkpoint(checkpoint)
        except CheckpointError as e:
            raise CheckpointError(
                f"{e}; cannot resume (delete it to train from epoch 1 again)"
            ) from None
        with weights_only_loads():
            Trainer.resume(
                checkpoint=checkpoint,
                model=model,
                reporter=reporter,
                optimizers=optimizers,
                schedulers=schedulers,
                scaler=scaler,
                ngpu=ngpu,
                strict=strict,
            )
        restore_epoch_model(Path(checkpoint).parent, reporter.get_epoch(), model)


def restore_epoch_model(output_dir: Path, epoch: int, model: torch.nn.Module) -> bool:
    """Write ``<epoch>epoch.pth`` (and point ``latest.pth`` at it) when it is missing.

    Returns:
        whether the file was written.
    """
    if epoch < 1:
        return False
    target = Path(output_dir) / f"{epoch}epoch.pth"
    if target.exists():
        return False
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, target)
    latest = target.with_name("latest.pth")
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(target.name)
    logging.warning(f"{target} was missing (the run stopped while saving): written from the checkpoint")
    return True
