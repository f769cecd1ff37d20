"""Dataset: a preparation Job per distinct input; its typed result becomes the status."""
