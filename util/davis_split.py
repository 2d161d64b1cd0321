"""Our fixed split of ../shared/data/davis2016-train (30 sequences).

- SELECTION (= VAL_SEQUENCES): held out from training; checkpoints, thresholds and settings are
  chosen on them. Numbers on them flatter: they are selection numbers.
- REPORT: held out from training AND from every decision; only final numbers are reported on
  them, per sequence, beside the selection ones. Networks trained before this split existed
  (the shipped bundled weights up to v1) saw them in training: their numbers there do not
  count as held-out.
- Training: the rest (16 sequences), plus ../shared/data/static-fg. A network to ship, once its
  recipe has been measured on REPORT by a run without them, may also train on the REPORT videos
  (the trainers' --with-report): its own numbers there are then not held-out numbers.
"""
VAL_SEQUENCES = ('bear', 'boat', 'car-turn', 'dance-jump', 'hike', 'soccerball')
SELECTION_SEQUENCES = VAL_SEQUENCES
REPORT_SEQUENCES = ('bmx-bumps', 'breakdance-flare', 'dog-agility', 'drift-turn',
                    'motocross-bumps', 'paragliding', 'scooter-gray', 'surf')
HELD_OUT = VAL_SEQUENCES + REPORT_SEQUENCES
SPLITS = {'selection': SELECTION_SEQUENCES, 'report': REPORT_SEQUENCES}


def held_out(with_report=False):
    """The sequences a training run must never read: selection and report, or selection alone
    for a run that also trains on the report videos."""
    return SELECTION_SEQUENCES if with_report else HELD_OUT


def train_sequences(all_sequences, with_report=False):
    """All sequences except the held-out ones (`held_out(with_report)`), in sorted order."""
    excluded = held_out(with_report)
    return sorted(s for s in all_sequences if s not in excluded)
