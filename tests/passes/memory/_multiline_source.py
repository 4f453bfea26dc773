"""Source lines read by ``test_eager_names.py`` (a statement spelled over two lines at line 3)."""

k, v = divmod(
    7, 2)  # fmt: skip
w = 3
