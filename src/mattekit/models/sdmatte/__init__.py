"""SDMatte and LiteSDMatte: Stable Diffusion 2 grafted for interactive matting."""

from mattekit.models.registry import ModelEntry, register_model
from mattekit.models.sdmatte.lightning_model import LiteSDMatte, SDMatte

register_model(
    ModelEntry(
        "sdmatte",
        SDMatte,
        "SDMatte: Stable Diffusion 2 grafted for interactive matting, visual-prompt "
        "cross-attention + masked self-attention (ICCV 2025)",
        tiny={"variant": "tiny"},
        # As the release trains it: from SD 2's weights, the autoencoder frozen (random weights
        # alone would train it, 84 M parameters and the encoder's activations more).
        paper_size={"variant": "sd2", "train_vae": False},
    )
)
register_model(
    ModelEntry(
        "litesdmatte",
        LiteSDMatte,
        "LiteSDMatte: BK-SDM-pruned UNet + tiny autoencoder, distilled from SDMatte (ICCV 2025)",
        tiny={"variant": "tiny"},
        paper_size={"variant": "sd2", "train_vae": False},
    )
)
