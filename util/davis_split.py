"""Our fixed split of ../shared/data/davis2016-train (30 sequences).

The held-out sequences are never used for training; every validation number we report
(semi-supervised J&F, first-scribble J) is measured on them.
"""
VAL_SEQUENCES = ('bear', 'boat', 'car-turn', 'dance-jump', 'hike', 'soccerball')


def train_sequences(all_sequences):
    """All sequences except the held-out ones, in sorted order."""
    return sorted(s for s in all_sequences if s not in VAL_SEQUENCES)
