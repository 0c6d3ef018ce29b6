"""SDMatte's ``referring_text``: each sample's referring expression as the context of the down and
up blocks' cross-attention (the release on RefMatte-RW100), the mid block's kept visual."""

import dataclasses
import json

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from open_clip.tokenizer import SimpleTokenizer
from sdmatte_cases import same_weights
from torch import nn

from mattekit.models.base import restoring_from_checkpoint
from mattekit.models.sdmatte import attention
from mattekit.models.sdmatte.configs import sd_unet_config, vae_config
from mattekit.models.sdmatte.lightning_model import TEXT_ENCODER, LiteSDMatte, SDMatte
from mattekit.models.sdmatte.referring_text import load_referring_encoder
from mattekit.models.sdmatte.text_context import TEXT_TOKENS, FolderTokenizer
from mattekit.models.sdmatte.torch_model import block_group, build_sdmatte
from mattekit.models.sdmatte.weights import to_official
from mattekit.nn.clip_tokens import PromptTokenizer

TEXTS = ["the cat on the left", "a red umbrella"]


def texted(batch, texts):
    return dataclasses.replace(batch, text=list(texts))


def alpha(module, batch) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(batch)["alpha"]


def two_copies(synthetic_batch):
    """One scene twice: any difference between the two outputs comes from the texts."""
    return synthetic_batch(64, 1).select([0, 0])


@pytest.fixture(scope="module")
def modules():
    """A tiny SDMatte with the switch on and one with it off, built from the same seed."""
    built = []
    for on in (True, False):
        torch.manual_seed(0)
        built.append(SDMatte(variant="tiny", referring_text=on))
    return built


def test_the_switch_off_ignores_texts_and_on_builds_the_same_network(modules, synthetic_batch):
    on, off = modules
    assert same_weights(on.model, off.model)  # the encoder is drawn beside, not from, the seed
    assert off.text_encoder is None and isinstance(on.text_encoder, nn.Module)
    batch = synthetic_batch(64, 2)
    assert all(batch.text)  # the synthetic scenes name their object
    plain = alpha(off, batch)
    assert torch.equal(alpha(off, texted(batch, TEXTS)), plain)
    # no text anywhere: the same computation
    for texts in ([], ["", "  "]):
        assert torch.equal(alpha(on, texted(batch, texts)), plain)
    assert not torch.allclose(alpha(on, batch), plain, atol=1e-4)


def test_different_texts_give_different_alphas_and_the_same_text_the_same(modules, synthetic_batch):
    on, _ = modules
    batch = two_copies(synthetic_batch)
    different = alpha(on, texted(batch, TEXTS))
    assert (different[0] - different[1]).abs().max() > 1e-4
    same = alpha(on, texted(batch, [TEXTS[1]] * 2))
    assert torch.equal(same[0], same[1])
    torch.testing.assert_close(same[1], different[1], atol=1e-6, rtol=0)


def test_an_empty_text_takes_the_empty_caption_path(modules, synthetic_batch):
    on, off = modules
    batch = synthetic_batch(64, 2)
    mixed = alpha(on, texted(batch, [TEXTS[0], ""]))
    plain = alpha(off, batch)  # the switch off: the empty caption whatever the text
    torch.testing.assert_close(mixed[1], plain[1], atol=1e-6, rtol=0)
    assert (mixed[0] - plain[0]).abs().max() > 1e-4


def test_down_and_up_blocks_read_the_text_and_the_mid_block_the_visual_prompt(
    modules, synthetic_batch, monkeypatch
):
    on, _ = modules
    names = {id(m): name for name, m in on.model.unet.named_modules()}
    seen: dict[str, torch.Tensor] = {}

    def spy(attn, context):
        seen[names[id(attn)]] = context
        return context

    monkeypatch.setattr(attention, "cross_context", spy)
    batch = texted(synthetic_batch(64, 2), TEXTS)
    alpha(on, batch)
    with torch.no_grad():
        ids = PromptTokenizer(TEXT_TOKENS)(TEXTS)
        encoded = on.text_encoder(input_ids=ids).last_hidden_state
    groups = {block_group(name) for name in seen}
    assert groups == {"down", "mid", "up"}
    for name, context in seen.items():
        if block_group(name) == "mid":  # 8 x 8 latent: 64 visual-prompt tokens
            assert context.shape == (2, 64, 32), name
        else:
            assert torch.equal(context, encoded), name


def test_the_text_encoder_is_frozen_in_eval_mode_and_gets_no_gradient(synthetic_batch):
    torch.manual_seed(0)
    module = SDMatte(variant="tiny", referring_text=True).train()
    encoder = module.text_encoder
    assert TEXT_ENCODER in module.frozen_parts and not TEXT_ENCODER.in_checkpoint
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    optimised = {id(p) for group in module.parameter_groups() for p in group["params"]}
    assert not any(id(p) in optimised for p in encoder.parameters())
    batch = texted(synthetic_batch(64, 2, stage="train"), TEXTS)
    module.training_step(batch, 0).backward()
    assert all(p.grad is None for p in encoder.parameters())
    assert module.model.unet.down_blocks[0].attentions[0].proj_in.weight.grad is not None


def test_checkpoints_leave_the_encoder_out_and_restore_either_way(modules, synthetic_batch):
    _, off = modules
    torch.manual_seed(0)
    on = SDMatte(variant="tiny", referring_text=True)
    with torch.no_grad():
        for p in on.model.parameters():  # moved off the seed's weights: the load must load
            p.add_(0.01)
    checkpoint = {"state_dict": on.state_dict()}
    on.on_save_checkpoint(checkpoint)
    assert not any(key.startswith("text_encoder.") for key in checkpoint["state_dict"])
    batch = texted(synthetic_batch(64, 2), TEXTS)
    with restoring_from_checkpoint():
        restored = SDMatte(**dict(on.hparams))
    restored.load_state_dict(checkpoint["state_dict"])
    assert torch.equal(alpha(restored, batch), alpha(on, batch))
    # a checkpoint trained without the switch is evaluated with it (the RefMatte-RW100 test)
    plain = {"state_dict": off.state_dict()}
    off.on_save_checkpoint(plain)
    with restoring_from_checkpoint():
        switched = SDMatte(**{**dict(off.hparams), "referring_text": True})
    switched.load_state_dict(plain["state_dict"])
    assert same_weights(switched.text_encoder, on.text_encoder)
    assert torch.equal(alpha(switched, texted(batch, [])), alpha(off, batch))


def tiny_clip(seed: int = 3):
    from transformers import CLIPTextModel

    from mattekit.models.sdmatte.referring_text import text_encoder_config

    torch.manual_seed(seed)
    return CLIPTextModel(text_encoder_config("tiny")).eval()


def test_an_official_files_encoder_is_the_one_its_empty_caption_comes_from(tmp_path):
    torch.manual_seed(0)
    encoder = tiny_clip()
    path = tmp_path / "SDMatte.pth"
    torch.save(
        {"model": to_official(build_sdmatte("tiny").state_dict(), encoder.state_dict())}, path
    )
    module = SDMatte(variant="tiny", checkpoint=str(path), referring_text=True)
    assert same_weights(module.text_encoder, encoder)
    with torch.no_grad():
        empty = module.text_encoder(input_ids=PromptTokenizer(TEXT_TOKENS)([""]))
    torch.testing.assert_close(empty.last_hidden_state, module.model.text_context)
    no_text = tmp_path / "no_text.pth"
    torch.save(to_official(build_sdmatte("tiny").state_dict()), no_text)
    with pytest.raises(ValueError, match=r"needs SD 2's CLIP text encoder: none in .*no_text\.pth"):
        load_referring_encoder("sd2", [str(no_text)], None)  # refused before anything is built


def sd2_tokenizer_folder(folder):
    """A transformers tokenizer folder with OpenCLIP's vocabulary and SD 2's special tokens
    (``<|startoftext|>``, ``<|endoftext|>``, ``!`` as padding), as stable-diffusion-2 ships."""
    source = SimpleTokenizer()
    vocab = dict(source.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    merges = sorted(source.bpe_ranks, key=source.bpe_ranks.get)
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(map(" ".join, merges)))
    from transformers import CLIPTokenizer

    CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="!", model_max_length=77
    ).save_pretrained(folder)


def test_a_folders_encoder_and_tokenizer_are_used_and_agree_with_openclip(tmp_path):
    torch.manual_seed(0)
    UNet2DConditionModel(**sd_unet_config("tiny")).save_pretrained(tmp_path / "unet")
    AutoencoderKL(**vae_config("tiny")).save_pretrained(tmp_path / "vae")
    encoder = tiny_clip(seed=5)
    encoder.save_pretrained(tmp_path / "text_encoder")
    sd2_tokenizer_folder(tmp_path / "tokenizer")
    module = LiteSDMatte(variant="tiny", pretrained=str(tmp_path), referring_text=True)
    assert same_weights(module.text_encoder, encoder)
    assert isinstance(module.tokenizer, FolderTokenizer)
    # SD 2's tokenizer and OpenCLIP's give the same ids (official .pth files ship no tokenizer;
    # SD 2's takes a "!" in the text for its padding token, OpenCLIP's does not)
    texts = ["", "The man in the RED coat, on the left.", "  a   cat ", "café " * 40]
    assert torch.equal(module.tokenizer(texts), PromptTokenizer(TEXT_TOKENS)(texts))


def test_export_is_refused_rather_than_freezing_a_text(modules, synthetic_batch):
    on, off = modules
    batch = synthetic_batch(64, 1)
    with pytest.raises(ValueError, match="referring_text false"):
        on.export_graphs(batch)
    assert off.export_graphs(batch)
