"""Our fixed split of ../shared/data/davis2016-train (30 sequences).

- SELECTION (= VAL_SEQUENCES): held out from training; checkpoints, thresholds and settings are
  chosen on them. Numbers on them flatter: they are selection numbers.
- REPORT: held out from training AND from every decision; only final numbers are reported on
  them, per sequence, beside the selection ones. Networks trained before this split existed
  (the shipped bundled weights up to v1) saw them in training: their numbers there do not
  count as held-out.
- Training: the rest (16 sequences), plus ../shared/data/static-fg.
"""
VAL_SEQUENCES = ('bear', 'boat', 'car-turn', 'dance-jump', 'hike', 'soccerball')
SELECTION_SEQUENCES = VAL_SEQUENCES
REPORT_SEQUENCES = ('bmx-bumps', 'breakdance-flare', 'dog-agility', 'drift-turn',
                    'motocross-bumps', 'paragliding', 'scooter-gray', 'surf')
HELD_OUT = VAL_SEQUENCES + REPORT_SEQUENCES
SPLITS = {'selection': SELECTION_SEQUENCES, 'report': REPORT_SEQUENCES}


def train_sequences(all_sequences):
    """All sequences except the held-out ones (selection and report), in sorted order."""
    return sorted(s for s in all_sequences if s not in HELD_OUT)
