"""SAMA as a whole: the model around frozen SAM, its switches, and the family's task per step.

The blocks themselves (MVLE, Local-Adapter, heads) are tested in ``test_sama_parts.py``.
"""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from sam_cases import prompted_batch, release_tokens

from mattekit.checkpoint_config import init_defaults, resolve_checkpoint_model
from mattekit.models.sam.inputs import normalize
from mattekit.models.sama.lightning_model import MATTING_TERMS, SAMA, SEGMENTATION_TERMS
from mattekit.models.sama.mvle import regions_to_tokens
from mattekit.models.sama.torch_model import (
    TASKS,
    build_sama,
    encode_with_early,
    resized_position_embedding,
    scaled_pool_kernels,
)

BOX = torch.tensor([[[16.0, 24.0], [63.0, 95.0]]])  # corners, model pixels (tiny: 128 px)
BOX_LABELS = torch.tensor([[2, 3]])
SWITCHES = [(True, True), (True, False), (False, True), (False, False)]

# The switches issue 25 added: checkpoints written before it lack them.
SWITCHES_OF_ISSUE_25 = ("separate_task_tokens", "early_fusion")


def new_parameters(model) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("sam."))


def test_paper_size_adds_the_papers_share_of_sams_parameters():
    """Paper: SAMA adds 1.8% to SAM's parameter count (ViT-B here: 1.70 M on 93.7 M)."""
    with torch.device("meta"):
        model = build_sama("vit_b")
    sam = sum(p.numel() for p in model.sam.parameters())
    assert sam == 93_735_472  # segment-anything's vit_b
    assert 0.0175 < new_parameters(model) / sam < 0.0185
    assert model.early_block == 2  # the first global-attention block, as HQ-SAM


@pytest.mark.parametrize(("mvle", "adapter"), SWITCHES)
def test_switches_drop_their_modules_and_every_output_has_sams_stride(mvle, adapter):
    torch.manual_seed(0)
    model = build_sama("tiny", mvle=mvle, local_adapter=adapter).eval()
    assert (model.mvle is not None) == mvle and (model.adapters is not None) == adapter
    assert (model.early_projection is not None) == adapter
    images = torch.randn(2, 3, 128, 128)
    coords, labels = BOX.expand(2, -1, -1), BOX_LABELS.expand(2, -1)
    with torch.no_grad():
        features = model.encode(images)
        outputs = model.decode(features, coords, labels)
    assert (features.local is None) == (not mvle and not adapter)
    assert (features.early is None) == (not adapter)
    assert set(outputs) == set(TASKS)
    assert all(logits.shape == (2, 1, 64, 64) for logits in outputs.values())  # stride 2 tiny


def test_the_global_embedding_is_sams_and_the_views_are_the_quadrants_zoomed():
    """Batching the views with the image changes nothing: the global embedding is SAM's on the
    image alone, and view m's is SAM's on quadrant m resized to the input size."""
    torch.manual_seed(0)
    model = build_sama("tiny", mvle=False, local_adapter=True).eval()
    images = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        features = model.encode(images)
        alone = model.sam.image_encoder(images)
        top_right = F.interpolate(images[:, :, :64, 64:], size=(128, 128), mode="bilinear")
        view_1, early_1 = encode_with_early(model.sam.image_encoder, top_right, model.early_block)
    assert torch.allclose(features.embedding, alone, atol=1e-5)
    assert torch.allclose(features.local[:, 1], view_1, atol=1e-5)  # no MVLE: the views' own
    assert torch.allclose(features.early[:, 1], model.early_projection(early_1), atol=1e-5)


def test_early_features_are_the_chosen_blocks_output():
    torch.manual_seed(0)
    encoder = build_sama("tiny").sam.image_encoder.eval()
    images = torch.randn(1, 3, 128, 128)
    captured = {}
    handle = encoder.blocks[0].register_forward_hook(lambda m, i, o: captured.update(out=o))
    with torch.no_grad():
        embedding, early = encode_with_early(encoder, images, 0)
    handle.remove()
    assert torch.equal(early, captured["out"].permute(0, 3, 1, 2))
    assert torch.allclose(embedding, encoder(images), atol=1e-6)


def test_the_vit_takes_one_image_a_pass_with_the_values_of_one_batch():
    """Five views at 1024 px in one ViT batch hold five global attentions at once (the 12 GiB
    of a paper-size SAMA encode); one image a pass gives the same features."""
    torch.manual_seed(0)
    encoder = build_sama("tiny").sam.image_encoder.eval()
    images = torch.randn(5, 3, 128, 128)
    batch_sizes = []
    handle = encoder.blocks[0].register_forward_hook(
        lambda m, i, o: batch_sizes.append(i[0].shape[0])
    )
    with torch.no_grad():
        one_a_pass, early = encode_with_early(encoder, images, 1)
        together, early_together = encode_with_early(encoder, images, 1, images_per_pass=5)
    handle.remove()
    assert batch_sizes == [1] * 5 + [5]
    assert one_a_pass.shape == together.shape == (5, 32, 16, 16)
    assert torch.allclose(one_a_pass, together, atol=1e-5)
    assert torch.allclose(early, early_together, atol=1e-5)


def test_pool_kernels_scale_with_the_grid():
    assert scaled_pool_kernels(64) == (4, 8, 16)
    assert scaled_pool_kernels(16) == (1, 2, 4)
    with pytest.raises(ValueError, match="pool_kernels"):
        scaled_pool_kernels(24)


def test_an_untrained_task_gets_no_gradient_and_its_head_does_not_run():
    torch.manual_seed(0)
    model = build_sama("tiny").train()
    coords, labels = BOX.expand(2, -1, -1), BOX_LABELS.expand(2, -1)
    outputs = model(torch.randn(2, 3, 128, 128), coords, labels, tasks=("matting",))
    assert set(outputs) == {"matting"}
    running_mean = model.heads["segmentation"].fuse[1].running_mean.clone()
    outputs["matting"].square().mean().backward()
    token_grad = model.task_tokens.weight.grad
    assert token_grad[0].abs().sum() == 0 and token_grad[1].abs().sum() > 0  # seg, mat
    assert all(p.grad is None for p in model.heads["segmentation"].parameters())
    assert torch.equal(model.heads["segmentation"].fuse[1].running_mean, running_mean)


def test_a_sam_checkpoint_fills_sam_and_starts_both_tasks_from_mask_token_0(sam_checkpoint):
    sam, path = sam_checkpoint
    module = SAMA(variant="tiny", checkpoint=str(path))
    loaded = module.model.sam.state_dict()
    for name, value in sam.state_dict().items():
        ours = name.replace(
            "mask_decoder.output_upscaling.", "mask_decoder.pixel_decoder.upscaling."
        )
        assert torch.equal(loaded[ours], value), name
    decoder = sam.mask_decoder
    for index, task in enumerate(TASKS):
        assert torch.equal(module.model.task_tokens.weight[index], decoder.mask_tokens.weight[0])
        head = module.model.heads[task].hypernetwork.state_dict()
        for name, value in decoder.output_hypernetworks_mlps[0].state_dict().items():
            assert torch.equal(head[name], value), (task, name)


def test_a_fresh_sama_from_sam_starts_near_sams_single_mask_output(sam_checkpoint):
    """Zero-initialised adapters and head residuals, tokens and hypernetworks from SAM's mask 0:
    the heads start from SAM's answer; only the extra task token in the decoder's attention moves
    it (a random SAM's logits are small, so compare their pattern, not their signs)."""
    _, path = sam_checkpoint
    model = SAMA(variant="tiny", checkpoint=str(path)).eval().model
    image = normalize(torch.rand(1, 3, 128, 128))
    with torch.no_grad():
        ours = model(image, BOX, BOX_LABELS)
        sams, _ = model.sam.decode(model.sam.encode(image), BOX, BOX_LABELS)
    for task in TASKS:
        pair = torch.stack([ours[task].flatten(), sams[:, 0].flatten()])
        assert torch.corrcoef(pair)[0, 1] > 0.9, task
    untrained = SAMA(variant="tiny").eval().model  # no checkpoint: random tokens and MLPs
    untrained.sam.load_state_dict(model.sam.state_dict())
    with torch.no_grad():
        pair = torch.stack([untrained(image, BOX, BOX_LABELS)["matting"].flatten(), pair[1]])
    assert torch.corrcoef(pair)[0, 1] < 0.9


def test_frozen_sam_stays_out_of_the_optimiser_and_unchanged(
    sam_checkpoint, synthetic_batch, train_on_batch
):
    _, path = sam_checkpoint
    module = SAMA(variant="tiny", checkpoint=str(path))
    before = {name: value.clone() for name, value in module.model.sam.state_dict().items()}
    optimised = {id(p) for group in module.parameter_groups() for p in group["params"]}
    assert not any(id(p) in optimised for p in module.model.sam.parameters())
    losses = train_on_batch(module, synthetic_batch(128, 2, stage="train"), 3)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert not module.model.sam.training
    for name, value in module.model.sam.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_mixed_token_counts_decode_in_one_call_as_each_alone(synthetic_batch):
    torch.manual_seed(0)
    module = SAMA(variant="tiny").eval()
    batch = prompted_batch(synthetic_batch, [1, 3, 2])
    kinds = ["box", "points", "points"]
    with torch.no_grad():
        outputs = module.predict_tasks(batch, kinds, TASKS)
        for i, kind in enumerate(kinds):
            if kind == "box":
                coords, labels = batch.box[i].view(1, 2, 2), BOX_LABELS
            else:
                real = batch.point_labels[i] >= 0
                coords, labels = release_tokens(
                    batch.points[i][real].tolist(), batch.point_labels[i][real].tolist()
                )
            alone = module.model(normalize(batch.image[i : i + 1]), coords, labels)
            for task, name in (("segmentation", "seg_logits"), ("matting", "alpha_logits")):
                expected = F.interpolate(alone[task], (128, 128), mode="bilinear")
                assert torch.allclose(outputs[name][i : i + 1], expected, atol=1e-4), (i, task)


def test_forward_gives_both_outputs_as_sigmoids_of_their_logits(synthetic_batch):
    module = SAMA(variant="tiny").eval()
    batch = synthetic_batch(128, 2)
    with torch.no_grad():
        outputs = module(batch)
    for name in ("alpha", "seg"):
        assert outputs[name].shape == batch.alpha.shape
        assert torch.allclose(outputs[f"{name}_logits"].sigmoid(), outputs[name])


def test_joint_schedule_sums_both_tasks_losses_on_every_step(synthetic_batch):
    """Paper: "L = L_seg + L_matting", both tasks "concurrently": the default step computes every
    term, each equal to its task's own pass (segmentation against ``seg_mask``, on the scenes
    the alpha above 0.5; matting against the alpha)."""
    torch.manual_seed(0)
    module = SAMA(variant="tiny").eval()
    batch = module.prompted(synthetic_batch(128, 2, stage="train"), "train")
    assert torch.equal(batch.seg_mask, (batch.alpha > 0.5).float())
    for step in range(3):
        module.training_step(batch, step)
        assert module.step_tasks(batch) == TASKS
    kinds = module.kinds_of(batch)
    with torch.no_grad():
        joint = module.loss_terms(module.training_outputs(batch), batch)
        alone = {}
        for task in TASKS:
            alone |= module.loss_terms(module.predict_tasks(batch, kinds, (task,)), batch)
    assert set(joint) == {*SEGMENTATION_TERMS, *MATTING_TERMS} == set(alone)
    for name, value in joint.items():
        assert torch.allclose(value, alone[name], rtol=1e-4, atol=1e-6), name
    total, _ = module.weighted_loss(module.training_outputs(batch), batch)
    assert torch.allclose(total, sum(alone.values()), rtol=1e-4)


def test_alternate_schedule_cycles_tasks_and_segmentation_sources_decide_alone(synthetic_batch):
    module = SAMA(variant="tiny", task_schedule="alternate", segmentation_sources=["dis"])
    batch = synthetic_batch(128, 2, stage="train")
    seen = []
    for step in range(4):
        module.training_step(batch, step)
        seen.append(module.step_tasks(batch))
    assert seen == [("segmentation",), ("matting",)] * 2
    dis = dataclasses.replace(batch, source=["dis", "dis"])
    module._step_index = 1  # the schedule says matting
    assert module.step_tasks(dis) == ("segmentation",)
    # Joint too: binary masks train the segmentation head only (the paper's matting data is AIM).
    assert SAMA(variant="tiny", segmentation_sources=["dis"]).step_tasks(dis) == ("segmentation",)
    with pytest.raises(ValueError, match="mixes segmentation sources"):
        module.step_tasks(dataclasses.replace(batch, source=["dis", "synthetic"]))


def test_an_alternate_step_computes_only_its_tasks_losses(synthetic_batch):
    module = SAMA(variant="tiny", task_schedule="alternate").train()
    batch = synthetic_batch(128, 2, stage="train")
    module._step_index = 0
    segmentation = module.loss_terms(module.training_outputs(batch), batch)
    module._step_index = 1
    matting = module.loss_terms(module.training_outputs(batch), batch)
    assert set(segmentation) == set(SEGMENTATION_TERMS)
    assert set(matting) == set(MATTING_TERMS)


def test_one_task_only_freezes_the_other_head_and_checks_the_schedule(synthetic_batch):
    module = SAMA(variant="tiny", tasks="matting")
    assert set(module.loss_weights) == set(MATTING_TERMS)
    assert not any(p.requires_grad for p in module.model.heads["segmentation"].parameters())
    assert module.step_tasks(synthetic_batch(128, 1)) == ("matting",)
    segmentation_only = SAMA(variant="tiny", tasks="segmentation")
    assert segmentation_only.checkpoint_monitor == ("val/seg/maxF", "max")
    with pytest.raises(ValueError, match="task_schedule must be one of"):
        SAMA(variant="tiny", task_schedule=["segmentation", "matting"])
    with pytest.raises(ValueError, match="tasks must be one of"):
        SAMA(variant="tiny", tasks="detection")


def test_a_checkpoint_from_before_the_switches_loads_with_the_forms_it_was_trained_with(
    tmp_path, save_module, save_checkpoint
):
    """Checkpoints recorded before issue 25 store ``task_schedule=None`` and lack the two new
    switches: the same weights load (no state-dict key changed) with the shared pass, early
    features in every adapter and alternation, as they were trained, by ``load_from_checkpoint``
    and by ``--ckpt_path`` alike; new ones with the paper's."""
    torch.manual_seed(0)
    module = SAMA(variant="tiny")
    module.hparams["task_schedule"] = None
    path = save_module(module, tmp_path / "before.ckpt", drop=SWITCHES_OF_ISSUE_25)
    restored = SAMA.load_from_checkpoint(path)
    assert restored.task_schedule == "alternate"
    assert not restored.model.separate_task_tokens and restored.model.early_fusion == "every"
    for name, value in module.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value), name
    module.hparams["task_schedule"] = "joint"
    restored = SAMA.load_from_checkpoint(save_module(module, tmp_path / "current.ckpt"))
    assert restored.task_schedule == "joint"
    assert restored.model.separate_task_tokens and restored.model.early_fusion == "first"
    # the command line's path: the CLI resolves every default, the checkpoint's values win
    cli_path = save_checkpoint("sama", tmp_path)
    stored = torch.load(cli_path, weights_only=True)
    stored["hyper_parameters"] = {
        k: v for k, v in stored["hyper_parameters"].items() if k not in SWITCHES_OF_ISSUE_25
    }
    torch.save(stored, cli_path)
    _, built = resolve_checkpoint_model(cli_path, None, init_defaults(SAMA), [])
    assert built["separate_task_tokens"] is False and built["early_fusion"] == "every"


def test_sama_overfits_one_batch(synthetic_batch, train_on_batch):
    torch.manual_seed(0)
    module = SAMA(variant="tiny", tasks="matting", lr=1e-2)  # SAM frozen and random
    losses = train_on_batch(module, synthetic_batch(128, 2, stage="train"), 12)
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("task", TASKS)
def test_each_task_pass_carries_only_its_own_token(task):
    """Paper: "two SAMA tokens are used separately": the other task's token, whatever its
    value, changes nothing of this task's logits, bit for bit; and decoding both tasks in one
    call (the passes batched) gives each what its pass alone gives."""
    torch.manual_seed(0)
    model = build_sama("tiny").eval()
    other = TASKS[1 - TASKS.index(task)]
    coords, labels = BOX.expand(2, -1, -1), BOX_LABELS.expand(2, -1)
    with torch.no_grad():
        features = model.encode(torch.randn(2, 3, 128, 128))
        before = model.decode(features, coords, labels)
        model.task_tokens.weight[TASKS.index(other)] += 1.0
        after = model.decode(features, coords, labels)
        alone = model.decode(features, coords, labels, (task,))
    assert torch.equal(after[task], before[task])
    assert not torch.allclose(after[other], before[other])
    assert torch.allclose(alone[task], after[task], atol=1e-5)


def test_the_shared_pass_switch_lets_the_tokens_attend_to_each_other():
    """``separate_task_tokens=False``: both tokens in one pass, so either token moves the other
    task's logits (the form the recorded tables used)."""
    torch.manual_seed(0)
    model = build_sama("tiny", separate_task_tokens=False).eval()
    with torch.no_grad():
        features = model.encode(torch.randn(1, 3, 128, 128))
        before = model.decode(features, BOX, BOX_LABELS)
        model.task_tokens.weight[0] += 1.0  # the segmentation token
        after = model.decode(features, BOX, BOX_LABELS)
    assert not torch.allclose(after["matting"], before["matting"])


@pytest.mark.parametrize(("early_fusion", "again"), [("first", False), ("every", True)])
def test_the_early_features_join_the_local_tokens_once(early_fusion, again):
    """Eq. 5-6: the first adapter's keys and values are the MVLE output + F_early. The second
    adapter reads the first one's local output, which already holds F_early (its residual), so
    by default nothing is added again; ``early_fusion=every`` adds it in each adapter."""
    torch.manual_seed(0)
    model = build_sama("tiny", early_fusion=early_fusion).eval()
    values, local_out = [], {}

    def keep_values(module, args):
        values.append(args[2])  # global_to_local(q, k, v): v is the fused local tokens

    adapters = model.adapters
    hooks = [adapter.global_to_local.register_forward_pre_hook(keep_values) for adapter in adapters]
    hooks.append(model.adapters[0].register_forward_hook(lambda m, i, o: local_out.update(o=o[1])))
    with torch.no_grad():
        features = model.encode(torch.randn(1, 3, 128, 128))
        model.decode(features, BOX, BOX_LABELS, ("matting",))
    for hook in hooks:
        hook.remove()
    early = regions_to_tokens(features.early).flatten(0, 1)
    mvle_output = regions_to_tokens(features.local).flatten(0, 1)
    assert torch.equal(values[0], mvle_output + early)
    expected = local_out["o"].flatten(0, 1) + (early if again else 0)
    assert torch.equal(values[1], expected)
    with pytest.raises(ValueError, match="early_fusion"):
        build_sama("tiny", early_fusion="twice")


def test_smaller_local_views_encode_each_quadrant_at_its_own_resolution():
    """The cheaper option: views of S / 2 are the quadrants themselves (no resize), encoded with
    SAM's position embedding resized to their 8 x 8 grid; everything downstream follows."""
    torch.manual_seed(0)
    model = build_sama("tiny", local_view_size=64).eval()
    assert model.local_grid == (8, 8)
    images = torch.randn(1, 3, 128, 128)
    encoder = model.sam.image_encoder
    with torch.no_grad():
        features = model.encode(images)
        outputs = model.decode(features, BOX, BOX_LABELS)
        bottom_left, _ = encode_with_early(encoder, images[:, :, 64:, :64], None)
        without_mvle = build_sama("tiny", mvle=False, local_view_size=64).eval()
        without_mvle.load_state_dict(model.state_dict(), strict=False)
        raw = without_mvle.encode(images)  # the views' own embeddings
    assert features.local.shape == (1, 4, 32, 8, 8)
    assert torch.allclose(raw.local[:, 2], bottom_left, atol=1e-5)
    assert all(logits.shape == (1, 1, 64, 64) for logits in outputs.values())
    assert torch.equal(resized_position_embedding(encoder.pos_embed, (16, 16)), encoder.pos_embed)
    assert resized_position_embedding(encoder.pos_embed, (8, 8)).shape == (1, 8, 8, 64)
    with pytest.raises(ValueError, match="local_view_size"):
        build_sama("tiny", local_view_size=60)
