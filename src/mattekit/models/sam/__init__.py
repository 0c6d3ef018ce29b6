"""SAM's shared build, for the SAM-based families (ZIM, SAMA; not a family itself: nothing here
registers a model).

- :mod:`.build`: the variants table (:data:`~.build.VARIANTS`: ``vit_b``, ``vit_l``, ``vit_h``,
  ``tiny``) and SAM's image and prompt encoders at a variant's sizes.
- :mod:`.weights`: a SAM checkpoint (official, or a mattekit SAM / ZIM run) into a build that
  names its parameters as SAM does.
- :mod:`.inputs`: what a SAM-based model is fed (normalisation, padding, prompt tokens).
- :mod:`.export`: SAM's split for ``mattekit export`` (image encoder / prompt decoder).

The mask decoder (masked two-way transformer, pixel decoders) and the ``Zim`` module that holds
the parts are ZIM's (:mod:`mattekit.models.zim.torch_model`); SAMA's SAM is that module built
with SAM's decoder and no masked attention.
"""
