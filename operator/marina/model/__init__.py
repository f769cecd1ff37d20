"""What a trained model is and how it is judged: the artifact (versioned JSON addressed by sha256,
never pickle) and the scoring every judgement shares (metrics, k-fold search).

May import `marina.data` and everything below it.
"""
