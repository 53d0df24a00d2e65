//! Renewal orchestration (STUB).
