"""The Uni-HAR network and its checkpoint I/O."""

from unihar.models.base import HARModel, UniHARFeatures
from unihar.models.checkpoint import checkpoint_filter_fn, load_checkpoint, read_state_dict, save_pretrained
from unihar.models.fusion import ConcatFusion, CrossAttentionFusion
from unihar.models.network import ImageEncoder, PoseFormerFactorized, UniHAR, build_model

__all__ = [
    "ConcatFusion",
    "HARModel",
    "CrossAttentionFusion",
    "ImageEncoder",
    "PoseFormerFactorized",
    "UniHAR",
    "UniHARFeatures",
    "build_model",
    "checkpoint_filter_fn",
    "load_checkpoint",
    "read_state_dict",
    "save_pretrained",
]
