//! Helpers shared by the end-to-end scenarios in `tests/tests/`.
