//! QUIC stock stream client (being written: see the stream issue).
