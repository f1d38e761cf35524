"""Reference training-time (over-parameterized) blocks that fxrep collapses, and small nets built from them.

Each block follows its paper's official code; see the module docstrings for the source and for
what the block collapses to at inference. `randomize_` gives a model non-trivial BatchNorm
statistics so that folding mistakes show up numerically.
"""

from __future__ import annotations

from fxrep.models.acnet import ACBlock
from fxrep.models.dbb import (
    BNAndPadLayer,
    BNAndZeroPadLayer,
    DiverseBranchBlock,
    IdentityBasedConv1x1,
    dbb_model_convert,
)
from fxrep.models.detector import TinyDetector, street_scene, tiny_detector, tiny_detector_convert
from fxrep.models.diracnet import DiracConv2d, DiracNetBlock, NCReLU, dirac_delta
from fxrep.models.doconv import DOConv2d
from fxrep.models.expandnet import ExpandCK, ExpandCL, ExpandFC
from fxrep.models.inception import BasicConv2d, InceptionBlock
from fxrep.models.levit import LeViT, LinearNorm, NormLinear, levit_fuse, levit_small
from fxrep.models.mobileone import (
    MobileOne,
    MobileOneBlock,
    mobileone,
    mobileone_s0,
    mobileone_unit,
    reparameterize_model,
)
from fxrep.models.nets import (
    SmallNet,
    acnet_small,
    dbb_small,
    diracnet_small,
    doconv_small,
    expandnet_small,
    inception_small,
    mobileone_small,
    repmixer_small,
    repvgg_small,
)
from fxrep.models.randomize import randomize_
from fxrep.models.repmixer import (
    ConvFFN,
    FastViTStage,
    RepCPE,
    RepMixer,
    RepMixerBlock,
    fastvit_reparameterize,
)
from fxrep.models.repvgg import RepVGG, RepVGGBlock, repvgg_a0, repvgg_b0, repvgg_model_convert
from fxrep.models.residual_linear import ResidualLinearBlock, ResidualMLP

__all__ = [
    "ACBlock",
    "BNAndPadLayer",
    "BNAndZeroPadLayer",
    "BasicConv2d",
    "ConvFFN",
    "DOConv2d",
    "DiracConv2d",
    "DiracNetBlock",
    "DiverseBranchBlock",
    "ExpandCK",
    "FastViTStage",
    "ExpandCL",
    "ExpandFC",
    "IdentityBasedConv1x1",
    "InceptionBlock",
    "LeViT",
    "LinearNorm",
    "MobileOne",
    "MobileOneBlock",
    "NCReLU",
    "NormLinear",
    "RepCPE",
    "RepMixer",
    "RepMixerBlock",
    "RepVGG",
    "RepVGGBlock",
    "ResidualLinearBlock",
    "ResidualMLP",
    "SmallNet",
    "TinyDetector",
    "acnet_small",
    "dbb_model_convert",
    "dbb_small",
    "dirac_delta",
    "diracnet_small",
    "doconv_small",
    "expandnet_small",
    "fastvit_reparameterize",
    "inception_small",
    "levit_fuse",
    "levit_small",
    "mobileone",
    "mobileone_s0",
    "mobileone_small",
    "mobileone_unit",
    "randomize_",
    "reparameterize_model",
    "repmixer_small",
    "repvgg_a0",
    "repvgg_b0",
    "repvgg_model_convert",
    "repvgg_small",
    "street_scene",
    "tiny_detector",
    "tiny_detector_convert",
]
