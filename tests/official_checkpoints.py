"""Checkpoint files in the layouts users download, holding random weights, for the loader tests.

Every writer builds the released architecture at its real size and config and writes it the
way the release does; nothing here calls the harness's loaders, so a test that loads these files
through them checks the loaders against the formats, not against themselves.

    write_openai_clip(path)              OpenAI's ViT-B-16.pt: a TorchScript archive whose
                                         encode_image/encode_text were traced from a QuickGELU
                                         ViT-B/16, most weights in fp16, plus OpenAI's
                                         input_resolution/context_length/vocab_size buffers
    write_open_clip_safetensors(path)    open_clip_model.safetensors of open_clip's ViT-B-16 (GELU)
    official_groupvit.py: write_nvlabs_groupvit(path, state), group_vit_gcc_yfcc_30e-*.pth
                         ({"model", "config" (an OmegaConf DictConfig), "epoch", ...}), and
                         write_transformers_groupvit(folder, state), the same weights converted
                         by transformers' own rules
    write_bert_hub_folder(folder)        bert-base-uncased: hub config.json, a 30,522-line
                                         vocab.txt and BertForPreTraining weights
    write_augreg_npz(path, vit)          an AugReg .npz (vit_jax naming, as timm's `_load_weights`
                                         reads for vit_small_patch16_384)
    write_timm_safetensors(path, vit)    timm's hub model.safetensors (1000-class head included)
"""

from __future__ import annotations

import json
import warnings
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
    convert_weights_to_lp(model)
    half = {k for k, v in model.state_dict().items() if v.dtype == torch.float16}
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
