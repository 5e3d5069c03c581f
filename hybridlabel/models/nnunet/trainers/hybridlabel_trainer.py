"""nnU-Net trainer of hybridlabel: budgets and seed from the round's spec, and the
partial-label losses. nnU-Net finds it through `nnUNet_extTrainer` (this folder)."""

from __future__ import annotations

import os
import random
import time

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from hybridlabel.models.case_sampling import case_probabilities, class_factors, patch_class_probabilities
from hybridlabel.models.config import TrainingConfig
from hybridlabel.models.cutmix import EXAMPLES_FILE, pool_from_arrays
from hybridlabel.models.nnunet.checkpoint_types import allow_numpy_values
from hybridlabel.models.nnunet.losses import PartialLabelLoss, pasted_target
from hybridlabel.models.nnunet.spec import TrainingSpec, spec_from_environment
from hybridlabel.models.nnunet.trainers.cutmix_hooks import CaseRecorder, PasteThenAugment, pasted_examples
from hybridlabel.models.nnunet.warm_start import warm_start_state

CUTMIX_EXAMPLES = 4


class _BudgetSpent(Exception):
    """The training's time budget is spent: end as if the last epoch had been planned last."""


class WallClockPolyLR:
    """nnU-Net's poly decay (exponent 0.9) over the wall-clock budget instead of the
    epochs: a time-limited training ends at whatever epoch the time runs out, and under
    the epoch schedule its learning rate would never have decayed (the model kept is the
    one at a constant 1e-3, not a converged one). Stepped by nnU-Net at each epoch's
    start; the epoch it passes is ignored."""

    def __init__(self, optimizer, initial_lr: float, budget_seconds: float, elapsed, exponent: float = 0.9):
        self.optimizer, self.initial_lr, self.budget, self.elapsed = optimizer, initial_lr, budget_seconds, elapsed
        self.exponent = exponent

    def step(self, current_step=None) -> None:
        spent = min(self.elapsed() / self.budget, 1.0) if self.budget > 0 else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = self.initial_lr * (1.0 - spent) ** self.exponent


class _BatchMaskedLoss(torch.nn.Module):
    """The partial-label loss as nnU-Net calls it, `loss(output, target)`, with the batch's
    annotated classes (B, C) added from the trainer, made voxel-wise where CutMix pasted a
    tumour (`tumor_id` set). Outside a training step (nnU-Net's validation) there is no
    mask: every class counts as annotated, as the online Dice does."""

    def __init__(self, loss: torch.nn.Module, batch_mask, tumor_id: int | None = None):
        super().__init__()
        self.loss, self.batch_mask, self.tumor_id = loss, batch_mask, tumor_id

    def forward(self, output, target):
        mask = self.batch_mask()
        if mask is None:
            return self.loss(output, target)
        scales = isinstance(output, (list, tuple))  # deep supervision: a target and a mask per scale
        targets = list(target) if scales else [target]
        pairs = [(t, mask) if self.tumor_id is None else pasted_target(t, mask, self.tumor_id) for t in targets]
        if scales:
            return self.loss(output, [t for t, _ in pairs], [m for _, m in pairs])
        return self.loss(output, *pairs[0])


class HybridLabelTrainer(nnUNetTrainer):
    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),
    ):
        super().__init__(plans, configuration, fold, dataset_json, device)
        spec = spec_from_environment() or TrainingSpec(
            TrainingConfig(
                epochs=self.num_epochs,
                iterations_per_epoch=self.num_iterations_per_epoch,
                val_iterations=self.num_val_iterations_per_epoch,
                loss="naive",
            )
        )
        self.spec, budget = spec, spec.training
        self.num_epochs = budget.epochs
        self.num_iterations_per_epoch = budget.iterations_per_epoch
        # nnU-Net averages over the validation outputs of an epoch: at least one iteration
        self.num_val_iterations_per_epoch = max(1, budget.val_iterations)
        self.save_every = max(1, min(50, budget.epochs))
        self.oversample_foreground_percent = budget.foreground_oversampling
        if budget.learning_rate is not None:
            self.initial_lr = budget.learning_rate
        elif budget.optimizer == "adam":
            self.initial_lr = 1e-3
        random.seed(budget.seed)
        np.random.seed(budget.seed)
        torch.manual_seed(budget.seed)
        self.cutmix_pool, self.cutmix_tumor_id, self._cutmix_examples = [], None, []
        if budget.cutmix is not None and spec.cutmix_pool:
            with np.load(spec.cutmix_pool, allow_pickle=False) as arrays:
                self.cutmix_pool, self.cutmix_tumor_id = pool_from_arrays(arrays)

    # -- which cases a batch draws ---------------------------------------------------------
    def get_dataloaders(self):
        """nnU-Net's data loaders, drawing cases by models.case_sampling, and with
        `rare_class_patches` centring foreground patches on rare classes too. nnU-Net builds
        its loaders inside this method with `sampling_probabilities=None` and starts their
        workers before returning, so the loader class is swapped for its construction."""
        import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as base

        budget, annotated, log = self.spec.training, self.spec.annotated, self.print_to_log_file
        threshold = budget.rare_class_sampling
        loader = base.nnUNetDataLoader

        class CaseWeightedLoader(loader):
            def __init__(self, data, *args, **kwargs):
                super().__init__(data, *args, **kwargs)
                self.case, sinks = None, [self._loading]
                if isinstance(self.transforms, PasteThenAugment):  # the training loader, with CutMix
                    sinks.append(self.transforms.loading)
                self._data = CaseRecorder(self._data, lambda key: [sink(key) for sink in sinks])
                cases = list(self.indices)
                self.sampling_probabilities = p = case_probabilities(cases, annotated, threshold)
                if p is not None:
                    log(
                        f"cases drawn by their rarest annotated class: p from {min(p):.4f} to {max(p):.4f} "
                        f"over {len(p)} cases"
                    )
                self.class_factor = None
                if budget.rare_class_patches and threshold is not None and annotated:
                    self.class_factor = class_factors(cases, annotated, threshold)
                    rare = [f"{k} x{f:.1f}" for k, f in sorted(self.class_factor.items()) if f > 1]
                    if rare:
                        log(
                            f"foreground patches centred on a class by its repeat factor: {', '.join(rare)} "
                            "(the rest x1)"
                        )

            def _loading(self, key) -> None:
                self.case = key

            def get_bbox(self, data_shape, force_fg, class_locations, overwrite_class=None, verbose=False):
                if force_fg and overwrite_class is None and self.class_factor is not None and class_locations:
                    eligible = [k for k, v in class_locations.items() if not isinstance(k, tuple) and len(v)]
                    p = patch_class_probabilities(eligible, annotated.get(str(self.case)), self.class_factor)
                    if eligible and max(p) > min(p):  # equal weights: nnU-Net's own uniform draw, same stream
                        overwrite_class = eligible[np.random.choice(len(eligible), p=p)]
                return super().get_bbox(data_shape, force_fg, class_locations, overwrite_class, verbose)

        base.nnUNetDataLoader = CaseWeightedLoader
        try:
            return super().get_dataloaders()
        finally:
            base.nnUNetDataLoader = loader

    def get_training_transforms(self, *args, **kwargs):
        """nnU-Net's training transforms, preceded by CutMix's paste when the round has a
        tumour pool: cases whose loss does not annotate the tumour receive pastes."""
        augment = nnUNetTrainer.get_training_transforms(*args, **kwargs)
        cutmix, tumor = self.spec.training.cutmix, self.cutmix_tumor_id
        if cutmix is None or not self.cutmix_pool:
            return augment
        recipients = {key for key, classes in self.spec.annotated.items() if tumor not in classes}
        organs = [c for c in self.label_manager.foreground_labels if c != tumor]
        self.print_to_log_file(
            f"CutMix: {len(self.cutmix_pool)} tumour objects pasted with p={cutmix.probability} "
            f"into patches of {len(recipients)} cases without a tumour label ({cutmix.placement})"
        )
        return PasteThenAugment(augment, self.cutmix_pool, recipients, organs, cutmix.probability, cutmix.placement)

    # -- time budget and learning curve ------------------------------------------------
    def _train_seconds(self) -> float:
        """Wall seconds since the first epoch started: iterations, validation, checkpoints
        and logging, i.e. what a time budget pays for (data-loader start-up excluded)."""
        starts = self.logger.get_value("epoch_start_timestamps", step=None)
        return float(time.time() - starts[0]) if starts else 0.0

    def save_checkpoint(self, filename: str) -> None:
        # the loop uses checkpoint_final only: nnU-Net's `checkpoint_best` (by its EMA pseudo
        # Dice, written whenever it improves) costs a full write per early epoch on a CPU
        if not filename.endswith("checkpoint_best.pth"):
            super().save_checkpoint(filename)

    def on_train_start(self):
        super().on_train_start()
        if self.spec.parent_checkpoint and self.current_epoch == 0:  # not when continuing a training
            self._start_from_parent(self.spec.parent_checkpoint)
        plot = self.logger.plot_progress_png

        def every_tenth_epoch(folder: str) -> None:  # matplotlib per epoch: ~1 s on a CPU
            if self.current_epoch % 10 == 9 or self.current_epoch + 1 >= self.num_epochs:
                plot(folder)

        self.logger.plot_progress_png = every_tenth_epoch

    def _start_from_parent(self, checkpoint: str) -> None:
        allow_numpy_values()
        parent = torch.load(checkpoint, map_location="cpu", weights_only=True)["network_weights"]
        network = self.network.module if self.is_ddp else self.network
        network = getattr(network, "_orig_mod", network)
        state, partial = warm_start_state(network.state_dict(), parent)
        network.load_state_dict(state)
        self.print_to_log_file(
            f"started from {checkpoint}" + (f"; new classes only in {len(partial)} head tensors" if partial else "")
        )

    def on_epoch_start(self):
        limit = self.spec.training.max_train_seconds
        if limit is not None and self.current_epoch > 0 and self._train_seconds() >= limit:
            raise _BudgetSpent
        super().on_epoch_start()

    def on_epoch_end(self):
        epoch = self.current_epoch
        super().on_epoch_end()
        every = self.spec.training.curve_every
        if every and (epoch + 1) % every == 0 and self.local_rank == 0:
            self._save_curve_point(epoch + 1)

    def _save_curve_point(self, epochs: int) -> None:
        network = self.network.module if self.is_ddp else self.network
        network = getattr(network, "_orig_mod", network)
        folder = os.path.join(self.output_folder, "curve")
        os.makedirs(folder, exist_ok=True)
        torch.save(
            {
                "network_weights": network.state_dict(),
                "init_args": {"configuration": self.configuration_name},
                "inference_allowed_mirroring_axes": [int(a) for a in self.inference_allowed_mirroring_axes or ()],
                "epochs": epochs,
                "iterations": epochs * self.num_iterations_per_epoch,
                "train_seconds": self._train_seconds(),
                "saved_at": time.time(),
            },
            os.path.join(folder, f"epoch_{epochs:05d}.pth"),
        )

    def run_training(self):
        try:
            super().run_training()
        except _BudgetSpent:
            self.print_to_log_file(
                f"time budget of {self.spec.training.max_train_seconds} s spent after {self.current_epoch} epochs"
            )
            self.on_train_end()

    def configure_optimizers(self):
        from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

        if self.spec.training.optimizer == "adam":
            optimizer = torch.optim.AdamW(self.network.parameters(), self.initial_lr, weight_decay=self.weight_decay)
        else:
            optimizer, _ = super().configure_optimizers()
        if self.spec.training.max_train_seconds is not None:
            return optimizer, WallClockPolyLR(
                optimizer, self.initial_lr, self.spec.training.max_train_seconds, self._train_seconds
            )
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def _build_loss(self):
        if self.spec.training.loss == "naive":
            return super()._build_loss()
        loss = PartialLabelLoss(
            self.spec.training.loss,
            ignore_label=self.label_manager.ignore_label,
            batch_dice=self.configuration_manager.batch_dice,
            hidden_tumor=(self.spec.hidden_tumor[0], tuple(self.spec.hidden_tumor[1]))
            if self.spec.hidden_tumor
            else None,
        )
        if self.enable_deep_supervision:
            scales = self._get_deep_supervision_scales()
            weights = np.array([1 / (2**i) for i in range(len(scales))])
            weights[-1] = 0
            loss = DeepSupervisionWrapper(loss, weights / weights.sum())
        return _BatchMaskedLoss(loss, self._batch_mask, self.cutmix_tumor_id if self.cutmix_pool else None)

    def _batch_mask(self) -> torch.Tensor | None:
        keys = getattr(self, "_batch_keys", None)
        return None if keys is None else self._annotated_mask(keys)

    def _annotated_mask(self, keys) -> torch.Tensor:
        """(B, C) annotated classes of the batch's cases, from the spec, by case key."""
        n_classes = self.label_manager.num_segmentation_heads
        mask = torch.ones((len(keys), n_classes), dtype=torch.bool)
        for i, key in enumerate(keys):
            classes = self.spec.annotated.get(str(key))
            if classes is not None:
                mask[i] = False
                mask[i, 0] = True
                mask[i, [c for c in classes if c < n_classes]] = True
        return mask.to(self.device)

    def train_step(self, batch: dict) -> dict:
        # nnU-Net's step, unchanged: its `self.loss(output, target)` finds the batch's case
        # keys here (`_BatchMaskedLoss`), so upstream fixes to the step still arrive
        self._batch_keys = batch.get("keys")
        if self.cutmix_pool and len(self._cutmix_examples) < CUTMIX_EXAMPLES:
            self._keep_cutmix_examples(batch)
        try:
            return super().train_step(batch)
        finally:
            self._batch_keys = None

    def _keep_cutmix_examples(self, batch: dict) -> None:
        """The first pasted patches as the network got them, for the round's report."""
        found = pasted_examples(batch["data"], batch["target"], CUTMIX_EXAMPLES - len(self._cutmix_examples))
        if not found:
            return
        self._cutmix_examples += found
        arrays = {f"{k}_{i}": v for i, ex in enumerate(self._cutmix_examples) for k, v in ex.items()}
        path = os.path.join(self.output_folder, EXAMPLES_FILE)
        np.savez_compressed(path + ".tmp.npz", **arrays)
        os.replace(path + ".tmp.npz", path)

    # validation_step is nnU-Net's: it calls self.loss(output, target) outside a training
    # step, and the partial loss then treats every class as annotated, as the online Dice does.

    def perform_actual_validation(self, save_probabilities: bool = False):
        if self.spec.final_validation:
            super().perform_actual_validation(save_probabilities)
