"""The job RQ runs in the comparison: nothing, like the Rust bench's handler."""


def noop():
    return None
