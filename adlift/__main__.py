from adlift.cli import run

run()
