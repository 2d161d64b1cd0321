#!/usr/bin/env python3
"""Interactive video object segmentation GUI (MiVOS-STCN).

    python interactive_gui.py --images example/clip --num_objects 2
    python interactive_gui.py --video clip.mp4 --masks first_frame_masks/

Run with --help for all options; press F1 in the window for the keyboard shortcuts.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from util.errors import run_cli  # noqa: E402


def main():
    from gui.app import main as gui_main
    return gui_main(sys.argv[1:])


if __name__ == '__main__':
    run_cli(main)
