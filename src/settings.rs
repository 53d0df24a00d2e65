//! Settings resolution (STUB).
