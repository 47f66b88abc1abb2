"""NVlabs GroupViT gcc-yfcc checkpoint and its transformers folder, with random weights.

NVlabs' keys are enumerated here from NVlabs' modules (models/group_vit.py, transformer.py,
multi_label_contrastive.py) and converted to transformers' names by the rules of transformers'
convert_groupvit_nvlab_to_hf.py, independently of harness/backbones/groupvit.py. The `.pth`
pickles an OmegaConf DictConfig as NVlabs' save_checkpoint does, with omegaconf's classes
importable only while the file is written (the package is not installed).
"""

from __future__ import annotations

import contextlib
import math
import sys
import types
import typing
from collections import OrderedDict, defaultdict
from pathlib import Path

import torch

from tests.official_checkpoints import NOISE


# configs/group_vit_gcc_yfcc_30e.yml over configs/default.yml (the parts a reader would look at).
GCC_YFCC_CONFIG = dict(
    model=dict(type="MultiLabelContrastive",
               img_encoder=dict(type="GroupViT", embed_dim=384, num_heads=[6, 6, 6], depths=[6, 3, 3],
                                num_group_tokens=[64, 8, 0], num_output_groups=[64, 8], drop_rate=0.0,
                                drop_path_rate=0.1),
               text_encoder=dict(type="TextTransformer", context_length=77, width=256, layers=12,
                                 vocab_size=49408),
               contrast_temperature=0.07, proj_num_layers=2, output_dim=256, multi_label=3),
    data=dict(batch_size=256, img_aug=dict(img_size=224), text_aug=dict(max_seq_len=77, multi_label=3)),
    train=dict(epochs=30, base_lr=1.6e-3, amp_opt_level="O1", seed=0),
    evaluate=dict(eval_only=False, task=["cls", "seg"]),
    model_name="group_vit_gcc_yfcc_30e", output="output/group_vit_gcc_yfcc_30e", tag="default",
)


def nvlabs_groupvit_shapes(c: int = 384, depths=(6, 3, 3), groups=(64, 8, 0), outputs=(64, 8), patch: int = 16,
                           image: int = 224, width: int = 256, layers: int = 12, context: int = 77,
                           vocab: int = 49408, out_dim: int = 256, inner: int = 4096) -> dict[str, tuple]:
    """NVlabs MultiLabelContrastive's state dict: name -> shape (gcc-yfcc defaults)."""
    shapes: dict[str, tuple] = OrderedDict()

    def linear(name, o, i):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (o, i), (o,)

    def norm(name, n):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (n,), (n,)

    e = "img_encoder"
    shapes[f"{e}.pos_embed"] = (1, (image // patch) ** 2, c)
    shapes[f"{e}.patch_embed.proj.weight"], shapes[f"{e}.patch_embed.proj.bias"] = (c, 3, patch, patch), (c,)
    norm(f"{e}.patch_embed.norm", c)
    for s, depth in enumerate(depths):
        stage = f"{e}.layers.{s}"
        if groups[s]:
            shapes[f"{stage}.group_token"] = (1, groups[s], c)
        for b in range(depth):                                    # AttnBlock, fused qkv
            norm(f"{stage}.blocks.{b}.norm1", c)
            linear(f"{stage}.blocks.{b}.attn.qkv", 3 * c, c)
            linear(f"{stage}.blocks.{b}.attn.proj", c, c)
            norm(f"{stage}.blocks.{b}.norm2", c)
            linear(f"{stage}.blocks.{b}.mlp.fc1", 4 * c, c)
            linear(f"{stage}.blocks.{b}.mlp.fc2", c, 4 * c)
        if s < len(depths) - 1:                                   # GroupingBlock
            d = f"{stage}.downsample"
            norm(f"{d}.norm_tokens", c)
            linear(f"{d}.mlp_inter.fc1", c // 2, groups[s])
            linear(f"{d}.mlp_inter.fc2", outputs[s], c // 2)
            norm(f"{d}.norm_post_tokens", c)
            norm(f"{d}.norm_x", c)
            norm(f"{d}.pre_assign_attn.norm_post", c)
            for proj in ("q_proj", "k_proj", "v_proj", "proj"):
                linear(f"{d}.pre_assign_attn.attn.{proj}", c, c)
            norm(f"{d}.pre_assign_attn.norm2", c)
            linear(f"{d}.pre_assign_attn.mlp.fc1", 4 * c, c)
            linear(f"{d}.pre_assign_attn.mlp.fc2", c, 4 * c)
            for proj in ("q_proj", "k_proj", "v_proj", "proj"):
                linear(f"{d}.assign.{proj}", c, c)
            norm(f"{d}.norm_new_x", c)
            linear(f"{d}.mlp_channels.fc1", 4 * c, c)
            linear(f"{d}.mlp_channels.fc2", c, 4 * c)
        if s > 0 and groups[s]:                                   # LayerNorm + MixerMlp
            norm(f"{stage}.group_projector.0", c)
            linear(f"{stage}.group_projector.1.fc1", c // 2, groups[s - 1])
            linear(f"{stage}.group_projector.1.fc2", groups[s], c // 2)
    norm(f"{e}.norm", c)
    t = "text_encoder"
    shapes[f"{t}.positional_embedding"], shapes[f"{t}.token_embedding.weight"] = (context, width), (vocab, width)
    norm(f"{t}.ln_final", width)
    for b in range(layers):
        block = f"{t}.transformer.resblocks.{b}"
        shapes[f"{block}.attn.in_proj_weight"], shapes[f"{block}.attn.in_proj_bias"] = (3 * width, width), (3 * width,)
        linear(f"{block}.attn.out_proj", width, width)
        norm(f"{block}.ln_1", width)
        linear(f"{block}.mlp.c_fc", 4 * width, width)
        linear(f"{block}.mlp.c_proj", width, 4 * width)
        norm(f"{block}.ln_2", width)
    for name, in_dim in (("img_projector", c), ("text_projector", width)):   # ProjectMLP: 1x1 Conv1d
        shapes[f"{name}.linear_hidden.0.weight"], shapes[f"{name}.linear_hidden.0.bias"] = (inner, in_dim, 1), (inner,)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.linear_hidden.1.{stat}"] = (inner,)
        shapes[f"{name}.linear_hidden.1.num_batches_tracked"] = ()
        shapes[f"{name}.linear_out.weight"], shapes[f"{name}.linear_out.bias"] = (out_dim, inner, 1), (out_dim,)
    shapes["logit_scale"], shapes["multi_label_logit_scale"] = (), ()
    return shapes


def random_nvlabs_state(seed: int = 2) -> dict[str, torch.Tensor]:
    """Random weights of plausible scale: norms and BatchNorm variances near 1, the rest near 0."""
    gen = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for name, shape in nvlabs_groupvit_shapes().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000, dtype=torch.long)
            continue
        value = torch.randn(shape, generator=gen) * NOISE
        if name.endswith("logit_scale"):
            value = torch.tensor(math.log(1 / 0.07))
        elif len(shape) == 1 and ("norm" in name or ".ln_" in name or "linear_hidden.1.weight" in name
                                  or name.endswith("running_var") or "group_projector.0" in name):
            value = value + 1 if name.endswith(("weight", "running_var")) else value
        state[name] = value
    return state


_OMEGACONF_CLASSES = {"omegaconf.dictconfig": ["DictConfig"], "omegaconf.listconfig": ["ListConfig"],
                      "omegaconf.nodes": ["AnyNode"], "omegaconf.base": ["ContainerMetadata", "Metadata"]}


@contextlib.contextmanager
def omegaconf_importable_while_writing():
    """omegaconf's config classes under their real module names, present in sys.modules only
    inside this block (the package is not installed): what torch.save pickles by reference."""
    saved = {name: sys.modules.get(name) for name in ["omegaconf", *_OMEGACONF_CLASSES]}
    classes = {}
    for module_name, names in _OMEGACONF_CLASSES.items():
        module = sys.modules[module_name] = types.ModuleType(module_name)
        for name in names:
            classes[name] = type(name, (), {"__module__": module_name, "__qualname__": name})
            setattr(module, name, classes[name])
    sys.modules["omegaconf"] = types.ModuleType("omegaconf")
    try:
        yield types.SimpleNamespace(**classes)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def to_omegaconf(value, oc, parent=None, key=None):
    """A nested dict as OmegaConf holds it: DictConfig/ListConfig nodes with metadata, AnyNode leaves."""
    def meta(cls):
        m = cls()
        m.__dict__.update(ref_type=typing.Any, object_type=dict if cls is oc.ContainerMetadata else None,
                          optional=True, key=key, flags={}, flags_root=False, resolver_cache=defaultdict(dict))
        return m

    if isinstance(value, (dict, list)):
        node = oc.DictConfig() if isinstance(value, dict) else oc.ListConfig()
        items = value.items() if isinstance(value, dict) else enumerate(value)
        content = {k: to_omegaconf(v, oc, node, k) for k, v in items}
        node.__dict__.update(_metadata=meta(oc.ContainerMetadata), _parent=parent,
                             _content=content if isinstance(value, dict) else list(content.values()))
        return node
    leaf = oc.AnyNode()
    leaf.__dict__.update(_metadata=meta(oc.Metadata), _parent=parent, _val=value)
    return leaf


def write_nvlabs_groupvit(path: Path, state: dict) -> Path:
    """NVlabs' released checkpoint: save_checkpoint's dict, optimizer removed by publish_model."""
    with omegaconf_importable_while_writing() as oc:
        torch.save({"model": state, "lr_scheduler": {"t_initial": 30, "warmup_t": 2},
                    "metrics": {"max_accuracy": 0.0, "max_miou": 0.0}, "epoch": 29,
                    "config": to_omegaconf(GCC_YFCC_CONFIG, oc),
                    "amp": {"loss_scaler0": {"loss_scale": 65536.0, "unskipped": 12}}}, path)
    return path


def nvlabs_to_transformers(state: dict, vision_dim: int, text_dim: int) -> dict[str, torch.Tensor]:
    """NVlabs naming -> transformers GroupViTModel naming, by the rules of transformers'
    convert_groupvit_nvlab_to_hf.py (substring renames applied in order; fused q|k|v split;
    the projectors' 1x1-conv weights squeezed)."""
    out = {}
    for key, value in state.items():
        if ".attn.qkv." in key:          # img_encoder.layers.S.blocks.B.attn.qkv.{weight,bias}
            parts = key.split(".")
            for name, chunk in zip("qkv", value.split(vision_dim)):
                out[f"vision_model.encoder.stages.{parts[2]}.layers.{parts[4]}.self_attn.{name}_proj.{parts[-1]}"] = chunk
        elif ".attn.in_proj_" in key:    # text_encoder.transformer.resblocks.B.attn.in_proj_{weight,bias}
            block, kind = key.split(".")[3], key.rsplit("_", 1)[1]
            for name, chunk in zip("qkv", value.split(text_dim)):
                out[f"text_model.encoder.layers.{block}.self_attn.{name}_proj.{kind}"] = chunk
        else:
            new = _transformers_name(key)
            squeeze = any(p in new for p in ("projection.0", "projection.3"))
            out[new] = value.squeeze(-1) if squeeze and value.dim() == 3 else value
    return out


def _transformers_name(name: str) -> str:
    swaps = [("img_encoder.pos_embed", "vision_model.embeddings.position_embeddings", None),
             ("img_encoder.patch_embed.proj", "vision_model.embeddings.patch_embeddings.projection", None),
             ("img_encoder.patch_embed.norm", "vision_model.embeddings.layernorm", None),
             ("img_encoder.layers", "vision_model.encoder.stages", None),
             ("blocks", "layers", "res"), ("attn", "self_attn", "pre_assign")]
    for old, new, unless in swaps:
        if old in name and (unless is None or unless not in name):
            name = name.replace(old, new)
    if "proj" in name and "self_attn" in name and "text" not in name:
        name = name.replace("proj", "out_proj")
    name = name.replace("pre_assign_attn.attn.proj", "pre_assign_attn.attn.out_proj")
    name = name.replace("norm1", "layer_norm1")
    if "pre_assign" not in name:
        name = name.replace("norm2", "layer_norm2")
    for old, new in [("img_encoder.norm", "vision_model.layernorm"),
                     ("text_encoder.token_embedding", "text_model.embeddings.token_embedding"),
                     ("text_encoder.positional_embedding", "text_model.embeddings.position_embedding.weight"),
                     ("text_encoder.transformer.resblocks.", "text_model.encoder.layers."),
                     ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("c_fc", "fc1"), ("c_proj", "fc2"),
                     ("text_encoder", "text_model"), ("ln_final", "final_layer_norm"),
                     ("img_projector.linear_hidden.", "visual_projection."),
                     ("img_projector.linear_out.", "visual_projection.3."),
                     ("text_projector.linear_hidden", "text_projection"),
                     ("text_projector.linear_out", "text_projection.3")]:
        name = name.replace(old, new)
    return name


def write_transformers_groupvit(folder: Path, nvlabs_state: dict) -> Path:
    """nvidia/groupvit-gcc-yfcc as converted: GroupViTConfig()'s defaults are gcc-yfcc's architecture."""
    from transformers import GroupViTConfig, GroupViTModel

    from harness.backbones.groupvit import clip_bpe_tokenizer   # the tokenizer files only

    config = GroupViTConfig()
    with torch.device("meta"):
        model = GroupViTModel(config)
    hf = nvlabs_to_transformers(dict(nvlabs_state), config.vision_config.hidden_size, config.text_config.hidden_size)
    result = model.load_state_dict(hf, strict=False, assign=True)
    assert [k for k in result.missing_keys if not k.endswith("position_ids")] == [], result.missing_keys
    assert result.unexpected_keys == ["multi_label_logit_scale"], result.unexpected_keys
    model.text_model.embeddings.position_ids = torch.arange(config.text_config.max_position_embeddings)[None]
    model.save_pretrained(str(folder))
    clip_bpe_tokenizer(config.text_config.max_position_embeddings).save(Path(folder))
    return Path(folder)
