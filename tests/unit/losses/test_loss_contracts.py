"""What every loss promises: finite gradients, B > 1, decreasing under Adam, clear shape errors,
and the same numbers on CUDA."""

from collections.abc import Callable

import pytest
import torch

from mattekit.losses import (
    BCELoss,
    CompositionLoss,
    CrossEntropyLoss,
    GradientLoss,
    IoULoss,
    L1Loss,
    LaplacianLoss,
    SSIMLoss,
)

SIZE = 32  # the smallest power of two that a 5-level pyramid accepts comfortably


def make_inputs(batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    alpha = torch.rand(batch, 1, SIZE, SIZE, generator=generator)
    trimap = torch.randint(0, 3, (batch, 1, SIZE, SIZE), generator=generator).float() / 2
    fg = torch.rand(batch, 3, SIZE, SIZE, generator=generator)
    bg = torch.rand(batch, 3, SIZE, SIZE, generator=generator)
    classes = torch.randint(-1, 3, (batch, SIZE, SIZE), generator=generator)
    return {
        "alpha": alpha,
        "trimap": trimap,
        "fg": fg,
        "bg": bg,
        "image": alpha * fg + (1 - alpha) * bg,
        "classes": classes,
    }


# name -> (loss, number of logit channels, call(loss, logits, inputs)); each call turns a free
# logit tensor into what the loss expects so the same optimisation loop covers every loss
LossCall = Callable[[torch.nn.Module, torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]
CASES: dict[str, tuple[torch.nn.Module, int, LossCall]] = {
    "l1": (L1Loss(), 1, lambda f, x, d: f(x.sigmoid(), d["alpha"], d["trimap"])),
    "gradient": (GradientLoss(), 1, lambda f, x, d: f(x.sigmoid(), d["alpha"], d["trimap"])),
    "laplacian": (LaplacianLoss(), 1, lambda f, x, d: f(x.sigmoid(), d["alpha"], d["trimap"])),
    "ssim": (SSIMLoss(), 1, lambda f, x, d: f(x.sigmoid(), d["alpha"])),
    "composition": (
        CompositionLoss(),
        1,
        lambda f, x, d: f(x.sigmoid(), d["image"], d["fg"], d["bg"], d["trimap"]),
    ),
    "bce": (BCELoss(), 1, lambda f, x, d: f(x, (d["alpha"] > 0.5).float())),
    "iou": (IoULoss(), 1, lambda f, x, d: f(x, (d["alpha"] > 0.5).float())),
    "cross_entropy": (
        CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5])),
        3,
        lambda f, x, d: f(x, d["classes"]),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_backward_gives_finite_gradients(name):
    loss_fn, channels, call = CASES[name]
    logits = torch.randn(2, channels, SIZE, SIZE, requires_grad=True)
    loss = call(loss_fn, logits, make_inputs())
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", CASES)
def test_adam_steps_decrease_the_loss(name):
    loss_fn, channels, call = CASES[name]
    inputs = make_inputs(seed=1)
    logits = torch.zeros(2, channels, SIZE, SIZE, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=0.1)
    losses = []
    for _ in range(10):
        optimiser.zero_grad()
        loss = call(loss_fn, logits, inputs)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


REGION_LOSSES = [L1Loss(), GradientLoss(), LaplacianLoss(levels=2)]


@pytest.mark.parametrize("loss_fn", REGION_LOSSES, ids=lambda m: type(m).__name__)
def test_alpha_losses_name_the_mismatched_argument(loss_fn):
    pred = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="target must have the shape of pred"):
        loss_fn(pred, torch.zeros(2, 1, 8, 9))
    with pytest.raises(ValueError, match="trimap must be B x 1 x H x W"):
        loss_fn(pred, pred, torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="trimap must have 1 channel"):
        loss_fn(pred, pred, torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="pred must be B x C x H x W"):
        loss_fn(pred[0], pred[0])


def test_composition_names_the_mismatched_argument():
    pred, image = torch.zeros(2, 1, 4, 4), torch.zeros(2, 3, 4, 4)
    loss_fn = CompositionLoss()
    with pytest.raises(ValueError, match="image must have 3 channel"):
        loss_fn(pred, torch.zeros(2, 1, 4, 4), image, image)
    with pytest.raises(ValueError, match="fg must have the shape of image"):
        loss_fn(pred, image, image[:1], image)
    with pytest.raises(ValueError, match="bg must have the shape of image"):
        loss_fn(pred, image, image, image[..., :3])
    with pytest.raises(ValueError, match="pred must be B x 1 x H x W"):
        loss_fn(torch.zeros(2, 1, 4, 5), image, image, image)
    with pytest.raises(ValueError, match="trimap must be B x 1 x H x W matching pred"):
        loss_fn(pred, image, image, image, torch.zeros(2, 1, 4, 5))


@pytest.mark.parametrize(
    "loss_fn", [SSIMLoss(window_size=3), BCELoss(), IoULoss()], ids=lambda m: type(m).__name__
)
def test_two_input_losses_name_the_mismatched_argument(loss_fn):
    first = "logits" if isinstance(loss_fn, BCELoss) else "pred"
    with pytest.raises(ValueError, match=f"target must have the shape of {first}"):
        loss_fn(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 3))
    with pytest.raises(ValueError, match=f"{first} must be B x C x H x W"):
        loss_fn(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", CASES)
def test_cuda_matches_cpu(name):
    loss_fn, channels, call = CASES[name]
    inputs = make_inputs()
    logits = torch.randn(2, channels, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    expected = call(loss_fn, logits, inputs)
    cuda_inputs = {key: value.cuda() for key, value in inputs.items()}
    actual = call(loss_fn.cuda(), logits.cuda(), cuda_inputs)
    loss_fn.cpu()
    assert actual.device.type == "cuda"
    assert actual.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)
