"""The generic trainer: loss-term registry, optimisers, jitted sharded steps, checkpoints, logging, the loop."""
