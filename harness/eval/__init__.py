"""The evaluation wing: metrics, the protocol, post-processing (DenseCRF), scoring, grounding, saved predictions."""
