"""v2x_metrics: one host's Prometheus metrics from what its nodes publish."""
