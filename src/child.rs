//! Child process (STUB).
