from assetvault.cli import entry

entry()
