"""Our fixed split of the photo sets (../shared/data/static-fg, static-sal: images/<id> +
masks/<id>.png): about 1 photo in 20, chosen by a hash of its name, is held out. The trainers'
photo loader (scripts/train/static_fg.py, its training part) never returns those; they serve
the synthetic validation clips and the NoC evaluation (scripts/eval_noc.py). The DAVIS video
splits are util/davis_split.py."""
import zlib

VALIDATION_EVERY = 20      # about 1 photo in 20 is kept out of training for synthetic validation


def is_validation_photo(name):
    """Whether static-fg photo `name` belongs to the validation part (a fixed hash of its name,
    so the split does not depend on which other photos a folder holds)."""
    return zlib.crc32(str(name).encode()) % VALIDATION_EVERY == 0
