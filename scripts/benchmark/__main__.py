from scripts.benchmark import main
from util.errors import run_cli

run_cli(main)
