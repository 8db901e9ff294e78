"""The chaos soak (`make soak`): a seeded fault-injection run and its independent judges."""
