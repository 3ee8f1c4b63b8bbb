from lottery.cli import entry

entry()
