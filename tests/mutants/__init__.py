"""`make mutants`: small deliberate changes to contracts and model, one at a
time, against the machine's ci run and the model tests (run.py)."""
