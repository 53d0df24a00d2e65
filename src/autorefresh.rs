//! Renewal loop + proxy + child for --auto-refresh (STUB).
