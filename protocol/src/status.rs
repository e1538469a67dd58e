//! Status conventions (filled in below).
