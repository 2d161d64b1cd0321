"""Our fixed splits of the real annotated videos in ../shared/data.

davis2016-train (30 single-object sequences):
- SELECTION (= VAL_SEQUENCES): held out from training; checkpoints, thresholds and settings are
  chosen on them. Numbers on them flatter: they are selection numbers.
- REPORT: held out from training AND from every decision; only final numbers are reported on
  them, per sequence, beside the selection ones. Networks trained before this split existed
  (the shipped bundled weights up to v1) saw them in training: their numbers there do not
  count as held-out.
- Training: the rest (16 sequences), plus the photo sets. A network to ship, once its recipe has
  been measured on REPORT by a run without them, may also train on the REPORT videos (the
  trainers' --with-report): its own numbers there are then not held-out numbers.

video-extra (23 multi-object sequences with object-id masks), split before any network was
trained on it:
- EXTRA_UNSEEN: six of the ten videos no network here had seen (all multi-object). Neither v1
  nor any later network trains on them or decides anything with them: the honest comparison of
  networks that all saw the DAVIS report videos.
- EXTRA_SELECTION: two more new videos, many small objects, added to the selection split.
- `<seq>-mo`: DAVIS 2017 multi-object annotations of davis2016-train videos (the same frames):
  a twin is held out exactly when its DAVIS 2016 video is.
- Training: the rest (the other new videos and the twins of training videos).
"""
VAL_SEQUENCES = ('bear', 'boat', 'car-turn', 'dance-jump', 'hike', 'soccerball')
SELECTION_SEQUENCES = VAL_SEQUENCES
REPORT_SEQUENCES = ('bmx-bumps', 'breakdance-flare', 'dog-agility', 'drift-turn',
                    'motocross-bumps', 'paragliding', 'scooter-gray', 'surf')
HELD_OUT = VAL_SEQUENCES + REPORT_SEQUENCES
SPLITS = {'selection': SELECTION_SEQUENCES, 'report': REPORT_SEQUENCES}

EXTRA_UNSEEN = ('dogs-jump', 'judo', 'lady-running', 'night-race', 'planes-water', 'schoolgirls')
EXTRA_SELECTION = ('dog-gooses', 'ytvos-003234408d')
TWIN_SUFFIX = '-mo'


def twin_of(seq):
    """The davis2016-train video a video-extra `<seq>-mo` annotates (itself otherwise)."""
    return seq[:-len(TWIN_SUFFIX)] if seq.endswith(TWIN_SUFFIX) else seq


def held_out(with_report=False):
    """The sequences a training run must never read: selection and report, or selection alone
    for a run that also trains on the report videos; the video-extra unseen and selection
    videos always (a `-mo` twin follows its video: see is_held_out)."""
    davis = SELECTION_SEQUENCES if with_report else HELD_OUT
    return davis + EXTRA_UNSEEN + EXTRA_SELECTION


def is_held_out(seq, with_report=False):
    """Whether a training run must never read `seq` (of either folder; twins follow their video)."""
    return twin_of(seq) in held_out(with_report) or seq in held_out(with_report)


def train_sequences(all_sequences, with_report=False):
    """All sequences except the held-out ones (`is_held_out`), in sorted order."""
    return sorted(s for s in all_sequences if not is_held_out(s, with_report))


def trained_on_report(entry):
    """Whether a weights manifest file entry's network saw the report videos in training: marked
    by --with-report; entries written before the report split existed (the shipped v1) trained
    on everything but the selection videos."""
    if 'trained_on_report' in entry:
        return bool(entry['trained_on_report'])
    data = entry.get('data', '')
    return bool(data) and 'HELD_OUT' not in data
