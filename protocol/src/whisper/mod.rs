//! Whisper v6.
