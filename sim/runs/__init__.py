"""Running scenarios: one run (`runner`), its results on disk (`results`), and sweeps over many (`sweep`)."""
