"""The report wing: tables, table specs, shape checks, the report, plots, figures, the CI check. Reads the store; never trains or predicts."""
