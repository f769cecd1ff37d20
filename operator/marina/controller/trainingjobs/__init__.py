"""TrainingJob: a training Job (or an Indexed Job of shards and a reduce) per spec and dataset version."""
