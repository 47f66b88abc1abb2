# SaG variants shared by its synthref and real-data configs; the table configs name them.
# Slot layouts are named by K_s (samples per Gaussian): each family's config sets K_g = K / K_s
# for its own K (12 on synthref, 36 on real data), so `sag@Ks3` is the paper's 12×3 row on real
# data and 4×3 on synthref. K_s = 2 is SaG's default layout in both (the paper's best, 18×2).
variants = dict(
    # Table A2: iterations of the entity discovery module.
    T8=dict(method=dict(T=8)), T6=dict(method=dict(T=6)), T4=dict(method=dict(T=4)),
    T2=dict(method=dict(T=2)), T1=dict(method=dict(T=1)),
    # Table 2 (main paper): component ablations.
    no_interaction=dict(method=dict(interaction=False)),
    transformer_agg=dict(method=dict(aggregation="transformer")),
    no_recon=dict(method=dict(recon_weight=0.0)),
    # Fig. A3: slot types.
    random_slots=dict(method=dict(slots=dict(type="random"))),
    query_slots=dict(method=dict(slots=dict(type="query"))),
    # Table 3 (right): inference schemes.
    avg=dict(method=dict(inference="avg")),
    max=dict(method=dict(inference="max")),
    min=dict(method=dict(inference="min")),
    # The release samples slots at test time; this uses the Gaussians' means instead.
    eval_mean=dict(method=dict(eval_slots="mean")),
    # Gradients through the last of the T iterations only (fixed-point / implicit differentiation;
    # sag_model/entity_discovery.py SLOT_GRADS), a stabiliser measured in docs/sag_dynamics.md.
    grad_last=dict(method=dict(slot_grad="last")),
    # Issue 24's lever on the fusion's text dominance: c_{i,t} made of image i's slots alone
    # (sag_model/fusion.py text_residual); measured in docs/sag_dynamics.md. SaG's synthref
    # default since issue 24 (configs/sag.py); on real data a variant.
    text_only=dict(method=dict(fusion_text_residual=0.0)),
    # The release's recipe (shared/specs/sag.md) as a row of its own (issue 24): the keys a
    # stabiliser would change, at the release's values. On real data SaG's default *is* the
    # release, so sag@release shares its fit; on synthref the default deviates (README,
    # Deviations). A change to a default must add the release's value here (tests/test_sag.py).
    release=dict(method=dict(slot_grad="all", eval_slots="sample", inference="ours",
                             fusion_text_residual=1.0)),
)
