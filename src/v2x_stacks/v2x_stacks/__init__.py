"""v2x_stacks: node classes of the application packages composed in one process.

The only package that imports application packages (v2x_bridge, v2x_policy): a
composition sits above what it composes, as a launch file does, so that none of them
depends on another (tests/test_import_contract.py).
"""
