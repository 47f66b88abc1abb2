"""The run wing: the runner's loop, the evaluation pass, parallel runs, run records, the fit loop and training state."""
