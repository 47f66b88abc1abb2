"""Checkpoint files in the layouts users download, holding random weights, for the loader tests.

Every writer builds the released architecture at its real size and config and writes it the
way the release does; nothing here calls the harness's loaders, so a test that loads these files
through them checks the loaders against the formats, not against themselves.

    write_openai_clip(path)              OpenAI's ViT-B-16.pt: a TorchScript archive whose
                                         encode_image/encode_text were traced from a QuickGELU
                                         ViT-B/16, most weights in fp16, plus OpenAI's
                                         input_resolution/context_length/vocab_size buffers
    write_open_clip_safetensors(path)    open_clip_model.safetensors of open_clip's ViT-B-16 (GELU)
    write_nvlabs_groupvit(path)          group_vit_gcc_yfcc_30e-*.pth: {"model", "config" (an
                                         OmegaConf DictConfig), "epoch", "metrics", ...}
    write_transformers_groupvit(folder)  the same weights converted by transformers' own rules
                                         (convert_groupvit_nvlab_to_hf.py), saved as a folder
    write_bert_hub_folder(folder)        bert-base-uncased: hub config.json, a 30,522-line
                                         vocab.txt and BertForPreTraining weights
    write_augreg_npz(path, vit)          an AugReg .npz (vit_jax naming, as timm's `_load_weights`
                                         reads for vit_small_patch16_384)
    write_timm_safetensors(path, vit)    timm's hub model.safetensors (1000-class head included)
GroupViT's NVlabs keys are enumerated here from NVlabs' modules (models/group_vit.py,
transformer.py, multi_label_contrastive.py), independently of harness/backbones/groupvit.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import types
import typing
import warnings
from collections import OrderedDict, defaultdict
from pathlib import Path

import numpy as np
import torch

NOISE = 0.02


def randomise_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Add noise to every float tensor, so no weight keeps a default (0 bias, 1 LayerNorm scale)
    that a loader could leave unset and still reproduce."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():   # these share storage with the module
            if tensor.is_floating_point():
                tensor.add_(torch.randn(tensor.shape, generator=gen) * NOISE)
    return module.eval()


# ---------------------------------------------------------------- CLIP
OPENAI_EXTRA_BUFFERS = dict(input_resolution=224, context_length=77, vocab_size=49408)


def openai_vit_b16_keys() -> set[str]:
    """The entries of OpenAI's ViT-B-16.pt state dict (12 + 12 residual blocks)."""
    block = ["attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
             "ln_1.weight", "ln_1.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
             "mlp.c_proj.bias", "ln_2.weight", "ln_2.bias"]
    keys = {"visual.class_embedding", "visual.positional_embedding", "visual.proj", "visual.conv1.weight",
            "visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight", "visual.ln_post.bias",
            "positional_embedding", "text_projection", "logit_scale", "token_embedding.weight",
            "ln_final.weight", "ln_final.bias", *OPENAI_EXTRA_BUFFERS}
    for i in range(12):
        keys |= {f"visual.transformer.resblocks.{i}.{k}" for k in block}
        keys |= {f"transformer.resblocks.{i}.{k}" for k in block}
    return keys


def write_openai_clip(path: Path, seed: int = 0) -> Path:
    """OpenAI's TorchScript ViT-B-16.pt, traced from a random QuickGELU ViT-B/16."""
    import open_clip
    from open_clip.model import convert_weights_to_lp

    model = randomise_(open_clip.create_model("ViT-B-16-quickgelu"), seed)
    # OpenAI's model keeps these three as tensor buffers and its causal mask as a plain
    # attribute (a constant of the trace), where open_clip has ints and a non-persistent buffer.
    del model.context_length, model.vocab_size
    mask = model.attn_mask
    del model._buffers["attn_mask"]
    model.attn_mask = mask
    for name, value in OPENAI_EXTRA_BUFFERS.items():
        model.register_buffer(name, torch.tensor(value))
    images, texts = torch.randn(1, 3, 224, 224), open_clip.tokenize(["a photo of a cat"])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # tracer warnings about python values in the graph
        traced = torch.jit.trace_module(model, {"encode_image": (images,), "encode_text": (texts,)},
                                        check_trace=False)
    # OpenAI's weights are "partially converted to float16" (open_clip's words): the same tensors
    # open_clip's convert_weights_to_lp turns to half.
    reference = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
    convert_weights_to_lp(reference)
    half = {k for k, v in reference.state_dict().items() if v.dtype == torch.float16}
    for name, param in traced.named_parameters():
        if name in half:
            param.data = param.data.half()
    assert set(traced.state_dict()) == openai_vit_b16_keys()
    traced.save(str(path))
    return path


def write_open_clip_safetensors(path: Path, seed: int = 1, name: str = "ViT-B-16"):
    """(the random open_clip model, path): its state dict as open_clip's hub safetensors."""
    import open_clip
    from safetensors.torch import save_file

    model = randomise_(open_clip.create_model(name), seed)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


# ---------------------------------------------------------------- GroupViT (NVlabs and transformers)
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


# ---------------------------------------------------------------- BERT
# The hub's bert-base-uncased/config.json.
BERT_BASE_UNCASED = {
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0", "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522,
}
WORDS = ["the", "a", "man", "woman", "on", "left", "right", "red", "blue", "shirt", "in", "of", "circle", "big"]


def bert_vocab() -> list[str]:
    """30,522 tokens with the specials at bert-base-uncased's ids ([PAD] 0, [UNK] 100, [CLS] 101,
    [SEP] 102, [MASK] 103, [unused*] around them), then characters, test words, filler pieces."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"[unused{i}]" for i in range(99, 994)]
    vocab += [chr(c) for c in range(33, 127) if not chr(c).isupper()] + WORDS
    vocab += [f"##w{i}" for i in range(30522 - len(vocab))]
    return vocab


def random_bert_for_pretraining(seed: int = 3):
    from transformers import BertConfig, BertForPreTraining

    torch.manual_seed(seed)
    return randomise_(BertForPreTraining(BertConfig(**BERT_BASE_UNCASED)), seed)


def write_bert_hub_folder(folder: Path, model, legacy_names: bool) -> Path:
    """The hub folder: legacy_names → pytorch_model.bin as uploaded in 2018 (`LayerNorm.gamma/beta`,
    tied decoder saved, no decoder bias); else model.safetensors in today's names (tied decoder
    left out, as safetensors cannot hold shared tensors)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(BERT_BASE_UNCASED, indent=2))
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))
    (folder / "vocab.txt").write_text("\n".join(bert_vocab()) + "\n", encoding="utf-8")
    state = {k: v for k, v in model.state_dict().items() if k != "cls.predictions.decoder.bias"}
    if legacy_names:
        state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
                 for k, v in state.items()}
        torch.save(state, folder / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        state.pop("cls.predictions.decoder.weight")
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"),
                  metadata={"format": "pt"})
    return folder


# ---------------------------------------------------------------- timm ViT-S/16 at 384
def random_vit_small_384(seed: int = 4):
    import timm

    torch.manual_seed(seed)
    return randomise_(timm.create_model("vit_small_patch16_384", pretrained=False), seed)


def write_augreg_npz(path: Path, vit) -> Path:
    """The AugReg release's .npz: Flax names and layouts (HWIO conv, [in, heads, head_dim] q/k/v)."""
    sd = {k: v.detach().float().numpy() for k, v in vit.state_dict().items()}
    heads = vit.blocks[0].attn.num_heads
    c = sd["cls_token"].shape[-1]
    w = {"embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
         "embedding/bias": sd["patch_embed.proj.bias"], "cls": sd["cls_token"],
         "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
         "Transformer/encoder_norm/scale": sd["norm.weight"], "Transformer/encoder_norm/bias": sd["norm.bias"],
         "head/kernel": sd["head.weight"].T, "head/bias": sd["head.bias"]}
    for i in range(len(vit.blocks)):
        b, jb = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        mha = jb + "MultiHeadDotProductAttention_1/"
        qkv_w, qkv_b = np.split(sd[b + "attn.qkv.weight"], 3), np.split(sd[b + "attn.qkv.bias"], 3)
        for name, weight, bias in zip(("query", "key", "value"), qkv_w, qkv_b):
            w[mha + name + "/kernel"] = weight.T.reshape(c, heads, c // heads)
            w[mha + name + "/bias"] = bias.reshape(heads, c // heads)
        w[mha + "out/kernel"] = sd[b + "attn.proj.weight"].reshape(c, heads, c // heads).transpose(1, 2, 0)
        w[mha + "out/bias"] = sd[b + "attn.proj.bias"]
        for flax, torch_name in (("LayerNorm_0", "norm1"), ("LayerNorm_2", "norm2")):
            w[f"{jb}{flax}/scale"], w[f"{jb}{flax}/bias"] = sd[b + torch_name + ".weight"], sd[b + torch_name + ".bias"]
        for r in range(2):
            w[f"{jb}MlpBlock_3/Dense_{r}/kernel"] = sd[f"{b}mlp.fc{r + 1}.weight"].T
            w[f"{jb}MlpBlock_3/Dense_{r}/bias"] = sd[f"{b}mlp.fc{r + 1}.bias"]
    np.savez(path, **{k: np.ascontiguousarray(v) for k, v in w.items()})
    return path


def write_timm_safetensors(path: Path, vit) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    return path
