"""The family contract of ``MattingModule``: losses, frozen parts, hooks, non-finite steps."""

import json

import pytest
import torch
from torch import nn

from mattekit.callbacks import FamilyCheckpoint
from mattekit.metrics import segmentation_metrics
from mattekit.models.baseline.lightning_model import Baseline
from mattekit.models.evaluation import OutputMetrics, at_original_size
from mattekit.models.frozen import FrozenPart
from mattekit.models.loss_terms import LossTerm
from mattekit.models.nonfinite import SUMMARY_NAME, NonFiniteLossError, gradients_finite
from mattekit.prompts import prompt_maps


@pytest.fixture
def batch(synthetic_batch):
    return synthetic_batch(32, 4)


def tiny(**kwargs):
    return Baseline(base_channels=8, depth=2, **kwargs)


# --- losses -----------------------------------------------------------------------------------


def test_loss_weights_are_declared_and_overridable(batch):
    module = tiny(loss_weights={"laplacian": 0.0})
    assert module.loss_weights == {"l1": 1.0, "laplacian": 0.0}
    total, terms = module.weighted_loss(module.training_outputs(batch), batch)
    assert list(terms) == ["l1"]  # a weight of 0 is not even computed
    assert torch.allclose(total, terms["l1"])
    doubled = tiny(loss_weights={"l1": 2.0, "laplacian": 0.0})
    doubled.load_state_dict(module.state_dict())
    torch.manual_seed(0)
    _, terms_2 = doubled.weighted_loss(doubled(batch), batch)
    _, terms_1 = module.weighted_loss(module(batch), batch)
    assert torch.allclose(terms_2["l1"], 2 * terms_1["l1"])
    with pytest.raises(ValueError, match=r"loss_weights: unknown loss term\(s\) \['lapalcian'\]"):
        tiny(loss_weights={"lapalcian": 0.0})


def test_undeclared_loss_term_is_an_error(batch):
    module = tiny()
    module.loss_terms = lambda outputs, b: {
        "l1": outputs["alpha"].mean(),
        "extra": 0 * outputs["alpha"].mean(),
    }
    with pytest.raises(KeyError, match="extra"):
        module.weighted_loss(module(batch), batch)


def test_training_draws_from_prompt_kinds_and_evaluation_uses_eval_prompt(batch):
    module = tiny(prompt_kinds=["points"], eval_prompt="box")
    train_maps = prompt_maps(batch, ["points"] * 4)
    box_maps = prompt_maps(batch, ["box"] * 4)
    training, evaluation = module.prompted(batch, "train"), module.prompted(batch, "test")
    assert training.prompt_kind == ["points"] * 4 and evaluation.prompt_kind == ["box"] * 4
    with torch.no_grad():
        trained = module.training_outputs(training)["alpha"]
        inferred = module(batch)["alpha"]
        assert torch.equal(trained, module.model(batch.image, train_maps).sigmoid())
        assert torch.equal(inferred, module.model(batch.image, box_maps).sigmoid())


def test_non_finite_loss_names_the_samples_or_skips_the_step(batch):
    module = tiny()
    module.loss_terms = lambda outputs, b: {"l1": outputs["alpha"].mean() * float("nan")}
    with pytest.raises(NonFiniteLossError, match=batch.sample_id[0]):
        module.training_step(batch, 0)
    skipping = tiny(nonfinite_loss="skip")
    skipping.loss_terms = module.loss_terms
    optimizer = torch.optim.AdamW(skipping.parameter_groups())
    before = {k: v.clone() for k, v in skipping.state_dict().items()}
    loss = skipping.training_step(batch, 0)
    assert loss.item() == 0.0
    loss.backward()  # reaches every parameter: under DDP every rank's all-reduce still runs
    assert all(p.grad is not None for p in skipping.parameters())
    skipping.on_before_optimizer_step(optimizer)
    optimizer.step()
    after = skipping.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no update, no weight decay
    assert [s.step_skipped for s in skipping.nonfinite.skips] == [True]


def test_a_non_finite_sample_is_named_and_left_out(batch):
    batch.image[2, :, 5, 5] = float("nan")
    with pytest.raises(NonFiniteLossError, match=rf"from samples \['{batch.sample_id[2]}'\]"):
        tiny().training_step(batch, 0)
    skipping = tiny(nonfinite_loss="skip")
    loss = skipping.training_step(batch, 0)
    assert torch.isfinite(loss) and loss.item() > 0  # the other three samples train
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in skipping.parameters() if p.grad is not None)
    (skip,) = skipping.nonfinite.skips
    assert skip.samples == [batch.sample_id[2]] and not skip.step_skipped


def test_non_finite_gradients_skip_the_step_and_too_many_stop_the_run(batch):
    module = tiny(nonfinite_loss="skip", max_consecutive_skips=2)
    # |x - x| is 0 (a finite loss) but the square root's gradient at 0 is not finite.
    module.loss_terms = lambda o, b: {"l1": (o["alpha"] - o["alpha"].detach()).abs().sqrt().sum()}
    optimizer = torch.optim.AdamW(module.parameter_groups())
    before = {k: v.clone() for k, v in module.state_dict().items()}
    for _ in range(2):
        loss = module.training_step(batch, 0)
        assert torch.isfinite(loss)
        loss.backward()
        module.on_before_optimizer_step(optimizer)
        optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    loss = module.training_step(batch, 0)
    loss.backward()
    with pytest.raises(NonFiniteLossError, match="3 optimiser steps in a row were skipped"):
        module.on_before_optimizer_step(optimizer)


def test_a_run_that_skipped_says_so_and_keeps_the_record_in_checkpoints(
    tmp_path, caplog, fit_on_synthetic
):
    module = tiny(nonfinite_loss="skip")
    nan_at_step = {1}

    def loss_terms(outputs, b):
        l1 = (outputs["alpha"] - b.alpha).abs().mean()
        return {"l1": l1 * float("nan") if module.global_step in nan_at_step else l1}

    module.loss_terms = loss_terms
    checkpoint = FamilyCheckpoint(save_last=True, dirpath=tmp_path / "checkpoints")
    with caplog.at_level("WARNING", logger="mattekit"):
        fit_on_synthetic(module, tmp_path, steps=3, callbacks=[checkpoint])
    assert "1 optimiser step(s) skipped" in caplog.text
    (record,) = json.loads((tmp_path / SUMMARY_NAME).read_text())
    assert record["step"] == 1 and record["step_skipped"]
    stored = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert stored["mattekit_nonfinite_steps"] == [record]


# --- frozen parts -----------------------------------------------------------------------------


class BaselineWithTeacher(Baseline):
    """A baseline distilled from a BatchNorm teacher that never trains (TeachDiffusionMatting)."""

    teacher_file: str | None = None

    def configure_models(self) -> None:
        super().configure_models()
        self.teacher = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
        path = self.initial_weights(self.teacher_file, stored=False)
        if path is not None:
            self.teacher.load_state_dict(torch.load(path, weights_only=True))

    def configure_frozen(self) -> list[FrozenPart]:
        return [FrozenPart("teacher", in_checkpoint=False)]

    def configure_losses(self) -> dict:
        return {**super().configure_losses(), "distill": LossTerm(None, 0.1)}

    def loss_terms(self, outputs, batch):
        features = self.teacher(batch.image)  # in train mode, BatchNorm would update its stats
        target = features.mean(1, keepdim=True).sigmoid()
        return {
            **super().loss_terms(outputs, batch),
            "distill": (outputs["alpha"] - target).abs().mean(),
        }


def test_frozen_part_keeps_batchnorm_statistics_and_weights(tmp_path, fit_on_synthetic):
    teacher_file = tmp_path / "teacher.pt"
    reference = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
    reference[1].running_mean.fill_(0.3)
    torch.save(reference.state_dict(), teacher_file)
    BaselineWithTeacher.teacher_file = str(teacher_file)
    module = BaselineWithTeacher(base_channels=8, depth=2)
    before = {k: v.clone() for k, v in module.teacher.state_dict().items()}
    in_optimiser = {id(p) for g in module.parameter_groups() for p in g["params"]}
    assert not any(id(p) in in_optimiser for p in module.teacher.parameters())

    trainer = fit_on_synthetic(module, tmp_path, steps=3)
    assert trainer.global_step == 3
    assert not module.teacher.training  # model.train() at the start of fit did not switch it
    for key, value in module.teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert module.teacher[1].num_batches_tracked == 0

    # Left out of the checkpoint, re-read from its own file on restore.
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    saved = torch.load(tmp_path / "run.ckpt", weights_only=True)["state_dict"]
    assert not any(key.startswith("teacher.") for key in saved)
    restored = BaselineWithTeacher.load_from_checkpoint(tmp_path / "run.ckpt")
    assert torch.equal(restored.teacher[1].running_mean, reference[1].running_mean)
    for key, value in module.model.state_dict().items():
        assert torch.equal(restored.model.state_dict()[key], value), key


def test_freeze_names_submodules():
    module = tiny(freeze=["model.stem"], lr_multipliers={"model.head": 10.0})
    assert not any(p.requires_grad for p in module.model.stem.parameters())
    assert not module.train().model.stem.training
    grouped = {id(p) for g in module.parameter_groups() for p in g["params"]}
    assert grouped == {id(p) for p in module.parameters() if p.requires_grad}
    with pytest.raises(ValueError, match=r"freeze: no submodule named 'model\.nope'"):
        tiny(freeze=["model.nope"])
    with pytest.raises(ValueError, match=r"lr_multipliers: .*'mask_decoder'"):
        tiny(lr_multipliers={"mask_decoder": 10.0})  # the names start with "model."


# --- hooks ------------------------------------------------------------------------------------


def test_unknown_or_unaccepted_prompt_kind_is_rejected(batch):
    with pytest.raises(ValueError, match="unknown prompt kind 'scribble'; the kinds are text"):
        tiny(prompt_kinds=["scribble"])
    with pytest.raises(ValueError, match=r"eval_prompt: Baseline takes \['points', 'box'"):
        tiny(eval_prompt="text")  # a known kind the baseline does not take
    with pytest.raises(ValueError, match="prompt_kinds: Baseline takes"):
        tiny(prompt_kinds=["box", "trimap"])
    batch.prompt_kind = ["box", "text", "box", "box"]
    with pytest.raises(ValueError, match=f"{batch.sample_id[1]}: Baseline takes .* not 'text'"):
        tiny()(batch)


def test_the_batch_names_each_samples_kind_and_empty_means_eval_prompt(batch):
    module = tiny(eval_prompt="mask").eval()
    batch.prompt_kind = ["", "points", "", "none"]
    assert module.kinds_of(batch) == ["mask", "points", "mask", "none"]
    with torch.no_grad():
        expected = module.model(batch.image, prompt_maps(batch, module.kinds_of(batch))).sigmoid()
        assert torch.equal(module(batch)["alpha"], expected)


def test_none_is_drawn_in_training_only_when_asked():
    assert tiny().hparams.prompt_kinds == ["points", "box", "mask"]
    assert tiny(prompt_kinds=["none"]).hparams.prompt_kinds == ["none"]


def test_prompt_maps_keep_only_the_chosen_kind(batch):
    maps = prompt_maps(batch, ["points", "box", "mask", "none"])
    assert maps.shape == (4, 3, 32, 32)
    assert torch.equal(maps[0, 0], batch.point_map[0, 0]) and maps[0, 1:].abs().sum() == 0
    assert maps[1, 1].sum() > 0 and maps[1, [0, 2]].abs().sum() == 0
    assert torch.equal(maps[2, 2], batch.coarse_mask[2, 0])
    assert maps[3].abs().sum() == 0


class HookedBaseline(Baseline):
    reference_name = None
    seen_stages: list

    def prompted(self, batch, stage):
        self.seen_stages.append(stage)
        return super().prompted(batch, stage)

    def configure_extra_metrics(self):
        return [OutputMetrics("alpha", "seg_mask", segmentation_metrics)]

    @property
    def checkpoint_monitor(self):
        return "val/alpha/maxF", "max"


def test_prompting_hook_extra_metrics_monitor_and_no_reference(tmp_path, fit_on_synthetic):
    HookedBaseline.seen_stages = []
    module = HookedBaseline(base_channels=8, depth=2)
    checkpoint = FamilyCheckpoint(save_last=True)
    trainer = fit_on_synthetic(
        module, tmp_path, steps=2, callbacks=[checkpoint], val_check_interval=2
    )
    assert {"train", "val"} <= set(HookedBaseline.seen_stages)
    assert checkpoint.monitor == "val/alpha/maxF" and checkpoint.mode == "max"
    assert checkpoint.best_model_path  # chosen by the family's metric
    assert "val/alpha/maxF" in trainer.callback_metrics
    table = (tmp_path / "metrics_val.md").read_text()
    assert "alpha/maxF" in table and "(reference)" not in table


def test_logits_are_resized_before_the_sigmoid():
    logits = torch.tensor([[[[-8.0, 8.0]]]])  # 1 x 1 x 1 x 2: a sharp edge
    sizes, content = torch.tensor([[1, 4]]), torch.tensor([[1, 2]])
    from_logits = at_original_size(logits, sizes, content, logits=True)[0]
    from_alpha = at_original_size(logits.sigmoid(), sizes, content)[0]
    expected = torch.nn.functional.interpolate(logits, (1, 4), mode="bilinear").sigmoid()[0]
    assert torch.allclose(from_logits, expected)
    assert (from_logits - from_alpha).abs().max() > 0.1  # the two conventions differ


def test_predict_returns_original_size(batch):
    batch.original_size[:] = torch.tensor([45, 70])
    module = tiny().eval()
    with torch.no_grad():
        predictions = module.predict_step(batch, 0)
    assert [p[0] for p in predictions] == batch.sample_id
    assert all(alpha.shape == (1, 45, 70) for _, alpha in predictions)


def test_baseline_overfits_one_batch(batch, train_on_batch):
    torch.manual_seed(0)
    losses = train_on_batch(tiny(lr=1e-2), batch, steps=100)
    assert losses[-1] < 0.1 * losses[0]


def test_poly_schedule_with_milestones_is_a_setting():
    module = tiny(lr_schedule="poly", poly_power=1.0, lr_milestones=[[50, 0.25]])
    assert module.schedule.factor(10, total_steps=100) == pytest.approx(0.9)
    assert module.schedule.factor(60, total_steps=100) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="milestones"):
        tiny(lr_schedule="cosine", lr_milestones=[[50, 0.25]])


# --- checkpoints ------------------------------------------------------------------------------


def checkpoint_step(path):
    return torch.load(path, weights_only=True)["global_step"]


def test_last_checkpoint_is_the_latest_state_when_the_metric_stops_improving(
    tmp_path, fit_on_synthetic
):
    """lr 0: val/SAD never improves after the first validation, yet last.ckpt follows the run."""
    checkpoint = FamilyCheckpoint(save_last=True, dirpath=tmp_path / "checkpoints")
    fit_on_synthetic(tiny(lr=0.0), tmp_path, steps=12, callbacks=[checkpoint], max_epochs=3)
    assert checkpoint_step(checkpoint.best_model_path) == 4  # 4 batches per epoch
    assert checkpoint_step(tmp_path / "checkpoints" / "last.ckpt") == 12


def test_a_step_checkpoint_beside_it_leaves_one_last_checkpoint(tmp_path, fit_on_synthetic):
    from lightning.pytorch.callbacks import ModelCheckpoint

    folder = tmp_path / "checkpoints"
    family = FamilyCheckpoint(save_last=True, dirpath=folder)
    every_3 = ModelCheckpoint(dirpath=folder, every_n_train_steps=3, save_last=True, save_top_k=-1)
    fit_on_synthetic(tiny(), tmp_path, steps=10, callbacks=[family, every_3], max_epochs=3)
    assert not list(folder.glob("last-v*.ckpt"))
    assert checkpoint_step(folder / "last.ckpt") == 10


def test_training_kinds_draw_as_the_families_did_and_single_kind_families_draw_nothing(batch):
    """The families drew ``torch.randint(len(prompt_kinds), (B,))`` before their forward, and
    the single-kind ones nothing: the random stream of every recorded run stays the same."""
    module = tiny(prompt_kinds=["box", "mask"])
    torch.manual_seed(3)
    expected = [["box", "mask"][i] for i in torch.randint(2, (4,)).tolist()]
    after = torch.rand(1)
    torch.manual_seed(3)
    assert module.prompted(batch, "train").prompt_kind == expected
    assert torch.equal(torch.rand(1), after)

    class MaskOnly(Baseline):
        accepted_prompts = ("mask",)
        default_eval_prompt = None

    single = MaskOnly(base_channels=8, depth=2)
    torch.manual_seed(3)
    first = torch.rand(1)
    torch.manual_seed(3)
    assert single.prompted(batch, "train").prompt_kind == ["mask"] * 4
    assert torch.equal(torch.rand(1), first)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_the_gradient_check_finds_one_bad_value_among_tensors_of_two_dtypes(bad):
    parameters = [nn.Parameter(torch.zeros(n)) for n in (3, 1000, 7)]
    parameters.append(nn.Parameter(torch.zeros(5, dtype=torch.bfloat16)))
    parameters.append(nn.Parameter(torch.zeros(2)))  # no gradient: not looked at
    for parameter in parameters[:4]:
        parameter.grad = torch.ones_like(parameter)
    finite = gradients_finite(parameters)
    assert finite.ndim == 0 and finite.dtype == torch.bool and bool(finite)
    for index in (1, 3):  # fp32, then bf16
        parameters[index].grad[-1] = bad
        assert not bool(gradients_finite(parameters))
        parameters[index].grad[-1] = 1.0
    assert bool(gradients_finite([nn.Parameter(torch.zeros(1))]))  # no gradients at all
